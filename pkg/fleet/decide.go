package fleet

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// ReasonSourceOtherRepository: the source follows another repository, so
// its digest cannot be pulled from the target's.
const ReasonSourceOtherRepository = "SourceOtherRepository"

// Decision is the plan rule of automatic promotion (spec.promotion.from)
// for one sync: what the target should do about its source.
type Decision struct {
	// Promote is true when the target should roll out Digest (Version): the
	// gate is open and the target neither runs it (status.currDigest), nor
	// is rolling it out, nor failed it (status.failedDigest): a failed
	// rollout leaves both on the failed digest, so it is not promoted
	// again. A clear-failed request clears status.failedDigest and leaves
	// status.currDigest on the failed digest with currStatus Failed: that
	// digest is promoted again, once, as a CV's poll would roll its tag's
	// digest out again (pkg/syncer Decide). Decide applies only the source's gate:
	// the controller then runs the digest through the target's own checks,
	// the same as a digest its poll found (release policy, minAge, platform
	// gate, signatures, the author's rights; pkg/controller judgeStart).
	Promote         bool
	Version, Digest string
	// Hold is true when the gate is closed: the target keeps what it runs
	// and sets ReleaseBlocked with Reason and Message. Nothing is rolled.
	Hold            bool
	Reason, Message string
	// HeldUntil is when a soaking version becomes eligible (Soaking only):
	// status.heldUntil, and when to requeue.
	HeldUntil *time.Time
	// Status is status.promotion after this sync.
	Status *cvv1.PromotionStatus
}

// Decide applies the gate to what was read of target's promotion source:
// src and readErr are the result of Reader.Read (or of the observer's
// cache). target's status.promotion carries what was last read, so a
// source that becomes unreachable keeps showing its last known version.
func Decide(target *cvv1.ContainerVersion, src *cvv1.ContainerVersion, readErr error, requireVerified bool, now time.Time) Decision {
	if target.Spec.Promotion == nil {
		return Decision{}
	}
	from := &target.Spec.Promotion.From
	status := target.Status.Promotion.DeepCopy()
	if readErr != nil || src == nil {
		msg := fmt.Sprintf("cannot read %s/%s in the source cluster (Secret %s): %v; nothing is rolled until it can be read",
			from.Namespace, from.Name, from.ClusterSecretRef.Name, readErr)
		return Decision{Hold: true, Reason: cvv1.ReasonSourceUnreachable, Message: msg, Status: status}
	}
	if status == nil {
		status = &cvv1.PromotionStatus{}
	}
	read := metav1.NewTime(now)
	status.LastRead = &read
	status.SourceVersion, status.SourceDigest = src.Status.SuccessVersion, src.Status.SuccessDigest
	status.SourceSuccessSince = nil
	if src.Status.CurrStatus == cvv1.StatusSuccess && src.Status.CurrDigest == src.Status.SuccessDigest && src.Status.CurrStatusTime != nil {
		since := *src.Status.CurrStatusTime
		status.SourceSuccessSince = &since
	}
	if src.Spec.ImageRepo != target.Spec.ImageRepo {
		return Decision{Hold: true, Reason: ReasonSourceOtherRepository, Status: status,
			Message: fmt.Sprintf("the source follows %s, this ContainerVersion %s: a digest cannot move between repositories", src.Spec.ImageRepo, target.Spec.ImageRepo)}
	}
	v := Gate(src, GateOptions{MinSoak: MinSoak(from), RequireVerified: requireVerified}, now)
	if !v.Open {
		d := Decision{Hold: true, Reason: v.Reason, Message: v.Message, Version: v.Version, Digest: v.Digest, Status: status}
		if v.Reason == cvv1.ReasonSoaking && !v.Until.IsZero() {
			until := v.Until
			d.HeldUntil = &until
		}
		return d
	}
	st := &target.Status
	switch {
	case st.Rollout != nil && st.Rollout.Digest == v.Digest, st.FailedDigest == v.Digest,
		st.CurrDigest == v.Digest && st.CurrStatus != cvv1.StatusFailed:
		return Decision{Version: v.Version, Digest: v.Digest, Status: status}
	}
	return Decision{Promote: true, Version: v.Version, Digest: v.Digest, Message: v.Message, Status: status}
}
