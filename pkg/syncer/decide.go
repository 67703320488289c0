package syncer

import (
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Action is what a resolved image asks of the controller.
type Action int

const (
	// Nothing: the image is what is deployed, or it already failed.
	Nothing Action = iota
	// StartRollout: a new image (or a re-pushed tag) must be rolled out.
	StartRollout
	// SkipFailed: the image is the one whose rollout failed; it is not
	// retried until the tag moves elsewhere or the user clears it.
	SkipFailed
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case StartRollout:
		return "StartRollout"
	case SkipFailed:
		return "SkipFailed"
	default:
		return "Nothing"
	}
}

// Decide compares the digest the tag points to with the CV's status. The
// digest, not the tag or version name, identifies a version: a re-pushed tag
// with new content is a new version.
func Decide(status *cvv1.ContainerVersionStatus, digest string) Action {
	switch {
	case status.Rollout != nil:
		return Nothing // a rollout is under way; it finishes first
	case digest == status.FailedDigest:
		return SkipFailed
	case digest == status.CurrDigest && status.CurrStatus == cvv1.StatusSuccess:
		return Nothing
	default:
		return StartRollout
	}
}
