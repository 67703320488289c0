package writeback

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// DefaultPendingTimeout is how long a Pending write may go unreported
// before Due asks for it again: a restarted controller has lost what its
// writer held, and a resubmission is harmless (the trailer makes it a
// no-op when the first attempt did land).
const DefaultPendingTimeout = 5 * time.Minute

// Due is the plan rule of write-back, a pure function of the CV's status:
// it says whether the image the CV's workloads run after a finished
// rollout (status.successVersion/successDigest: what passed, or what a
// rollback restored) should be submitted now, and otherwise after how long
// to look again (0: nothing to wait for).
//
// It follows from the rule that a failed rollout writes nothing: it leaves
// successDigest alone, and git already holds that image. A finished
// rollback leaves successDigest alone too, so Due does not ask for it: the
// controller submits NewRequest(cv, <the failed rollout's ID>, …) with
// RolledBack set as the rollback's action. That write is a no-op when git
// holds the restored image (the usual case) and puts it back when someone
// changed the file since.
func Due(cv *cvv1.ContainerVersion, now time.Time, pendingTimeout time.Duration) (bool, time.Duration) {
	st := cv.Status
	if cv.Spec.WriteBack == nil || st.SuccessDigest == "" || st.Rollout != nil || cv.Spec.Suspend {
		return false, 0
	}
	wb := st.WriteBack
	if wb == nil || wb.Digest != st.SuccessDigest || wb.Version != st.SuccessVersion {
		return true, 0
	}
	var since time.Time
	if wb.Time != nil {
		since = wb.Time.Time
	}
	var wait time.Duration
	switch wb.State {
	case cvv1.WriteBackFailed:
		wait = since.Add(Backoff(wb.Attempts)).Sub(now)
	case cvv1.WriteBackPending:
		if pendingTimeout <= 0 {
			pendingTimeout = DefaultPendingTimeout
		}
		wait = since.Add(pendingTimeout).Sub(now)
	default:
		return false, 0 // Written
	}
	if wait <= 0 {
		return true, 0
	}
	return false, wait
}

// NewRequest builds the request for the CV's current verified image.
// rolloutID is the rollout that just finished; when empty (a resubmission
// after Due), the ID recorded in status.writeBack for the same image is
// reused, so the trailer still matches a write that did land. The caller
// sets RolledBack and FromVersion when it knows them.
func NewRequest(cv *cvv1.ContainerVersion, rolloutID string, creds Credentials) Request {
	st := cv.Status
	req := Request{
		Key:         cv.Namespace + "/" + cv.Name,
		RolloutID:   rolloutID,
		ImageRepo:   cv.Spec.ImageRepo,
		Version:     st.SuccessVersion,
		Digest:      st.SuccessDigest,
		Signer:      st.Signer,
		Credentials: creds,
	}
	if cv.Spec.WriteBack != nil {
		req.Spec = *cv.Spec.WriteBack.DeepCopy()
	}
	if st.Provenance != nil {
		req.Provenance = *st.Provenance
	}
	if wb := st.WriteBack; wb != nil && wb.Digest == st.SuccessDigest && wb.Version == st.SuccessVersion {
		if req.RolloutID == "" {
			req.RolloutID = wb.RolloutID
		}
		if wb.State != cvv1.WriteBackWritten && wb.RolloutID == req.RolloutID {
			req.Attempts = wb.Attempts
		}
	}
	if req.RolloutID == "" {
		// No rollout to name (status written by an older controller): an ID
		// per CV and image keeps the write idempotent all the same.
		sum := sha256.Sum256([]byte(req.Key + "|" + req.Digest))
		req.RolloutID = "image-" + hex.EncodeToString(sum[:8])
	}
	return req
}
