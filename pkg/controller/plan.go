package controller

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// decision is what plan decides for one sync: the writes of the apply
// phase, in order (workload actions, history record, config key, then the
// one status write), and the side effects that follow a successful status
// write (Events, notifications, metrics).
type decision struct {
	// cv carries the new status; the status is written when it differs
	// from the snapshot's.
	cv      *cvv1.ContainerVersion
	actions []rollout.Action
	// record is a history record to append before the status write.
	record *plannedRecord
	// historyWriteBack is a write-back outcome the writer reported, to put
	// into the history records of its rollout before the status write
	// that records it (planWriteBack).
	historyWriteBack *history.WriteBack
	// configVersion is the version spec.config's key must hold, "" none.
	configVersion string
	effects       []effect
	// requeue looks at the CV again after this long (0: not needed).
	requeue time.Duration
	// consumed: the snapshot's requests are done once the status is written.
	consumed bool
	// fixed marks a drift correction, counted for fight detection.
	corrected bool
	// rolledBack is the ID of a rollout whose rollback finished in this
	// sync: its restored image is written back (planWriteBack).
	rolledBack string
}

// plannedRecord is a history record of the rollout in r.
type plannedRecord struct {
	rollout   *cvv1.RolloutStatus
	outcome   string
	reason    string
	workloads []string
	// writeBack is the record's git write-back, Pending when the finish
	// submits one (planWriteBack).
	writeBack *history.WriteBack
}

// effect is something the world learns once the status write succeeded.
// An effect of a rollout is sent once: apply keys it by the rollout's ID
// (emit), so a replayed sync never sends it twice.
type effect struct {
	// event: an Event on the CV.
	eventType, reason, message string
	// notification: kind (notify.*), with version, digest, from and message.
	notify                      string
	version, digest, from, text string
	// rolloutDone: observe a finished rollout in the metrics.
	rolloutDone *cvv1.RolloutStatus
	outcome     string
	// authzRefused counts an author refusal.
	authzRefused bool
	// log: an Info line on a rollout transition; detail, when set, is
	// logged with it as "err" (what went wrong, as the Event says it).
	log, detail string
	// writeBack hands a write to the git writer (writeback.go).
	writeBack *writeBackSubmit
}

func event(eventType, reason, message string) effect {
	return effect{eventType: eventType, reason: reason, message: message}
}

func warning(reason, message string) effect { return event(corev1.EventTypeWarning, reason, message) }

func normal(reason, message string) effect { return event(corev1.EventTypeNormal, reason, message) }

func notification(kind, version, digest, from, text string) effect {
	return effect{notify: kind, version: version, digest: digest, from: from, text: text}
}

// plan decides one sync from its snapshot. It is a pure function: it
// reads only snap and returns what to write; every transition is a table
// test (plan_test.go).
func plan(snap *snapshot) decision {
	d := decision{cv: snap.cv.DeepCopy(), consumed: servesRequests(snap)}
	if d.consumed && clearsFailed(snap.requests, snap.cv.Status) {
		// Tried again: the user fixed what made it fail. Only the failure
		// the request names is cleared (clearsFailure): a request replayed
		// after a later failure of the same digest clears nothing.
		d.cv.Status.FailedDigest = ""
	}
	switch {
	case snap.rollout != nil:
		planRollout(snap, &d)
	case snap.imported != nil:
		planImport(snap, &d)
	case snap.rest != nil && snap.rest.acts():
		planRest(snap, &d)
	case snap.promotion != nil:
		planPromotion(snap, &d)
	case snap.poll != nil:
		planPoll(snap, &d)
	}
	planAfterTransition(snap, &d)
	return d
}

// planAfterTransition runs the rules every decision ends with, whatever
// made the transition (plan, or replan after an action's outcome): the
// provenance read since the last status write, and git write-back.
func planAfterTransition(snap *snapshot, d *decision) {
	attachProvenance(snap, d)
	planWriteBack(snap, d)
}

// servesRequests reports whether this sync's poll serves the pending
// requests: a poll ran for them and found what they asked for (a push
// event's digest not served yet keeps its request waiting). Requests that
// arrive during a rollout wait for it to finish.
func servesRequests(snap *snapshot) bool {
	if snap.promotion != nil {
		return len(snap.requests) > 0 // a CV following a source has no poll to ask for
	}
	return len(snap.requests) > 0 && snap.poll != nil && !snap.poll.recheck
}

// statusChanged reports whether d's status differs from the snapshot's.
func (d *decision) statusChanged(snap *snapshot) bool {
	return !equality.Semantic.DeepEqual(d.cv.Status, snap.cv.Status)
}

// attachProvenance records provenance read since the last status write
// for the digest it belongs to: the rollout's while one is under way, the
// running version's after a success. During a rollout it rides along with
// the next status write the rollout makes anyway (its finish at the
// latest), so a provenance read costs no write of its own; at rest it is
// written once.
func attachProvenance(snap *snapshot, d *decision) {
	p, digest := snap.provenance, snap.provenanceDigest
	if p == nil {
		return
	}
	st := &d.cv.Status
	switch {
	case st.Rollout != nil && st.Rollout.Digest == digest && st.Rollout.Provenance == nil:
		if d.statusChanged(snap) {
			st.Rollout.Provenance = p
		}
	case st.Rollout == nil && st.SuccessDigest == digest && st.Provenance == nil:
		st.Provenance = p
	}
}
