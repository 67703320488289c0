package controller

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// planRollout makes the next transition of a rollout under way.
func planRollout(snap *snapshot, d *decision) {
	o, r := snap.rollout, d.cv.Status.Rollout
	switch {
	case o.planner == nil:
		finishMisconfigured(snap, d, "StrategyNotSupported",
			fmt.Sprintf("strategy %q is not supported by this controller version", rollout.StrategyKind(snap.cv)))
	case o.targetErr != nil:
		finishMisconfigured(snap, d, "InvalidDigest", o.targetErr.Error())
	case o.authz.refused != "":
		refuse(snap, d, "not rolling out "+r.Version+": "+o.authz.refused, r.Version, r.Digest)
	case r.RollingBack:
		// A rollback under way (or interrupted by a restart): finish it,
		// never re-patch the version that failed.
		planRollback(snap, d)
	default:
		setAuthorized(snap, d, o.authz)
		planForward(snap, d)
	}
}

// planForward plans the steps before the strategy (verifications,
// migrations), then the strategy, and judges the progress.
func planForward(snap *snapshot, d *decision) {
	o, r := snap.rollout, d.cv.Status.Rollout
	prep := o.lifecycle.Plan(o.world)
	if prep.Progress.Phase == rollout.Failed {
		fail(snap, d, prep.Progress, prep.Progress.Revert)
		return
	}
	if prep.Progress.Phase != rollout.Succeeded {
		advanceStep(r, prep.Progress.Step)
		d.actions = prep.Actions
		requeueWithin(snap, d)
		return
	}
	advanceStep(r, prep.Progress.Step)
	p := o.planner.Plan(o.world)
	judge(snap, d, p)
}

// advanceStep records a step reached; an empty step changes nothing.
func advanceStep(r *cvv1.RolloutStatus, step string) {
	if step != "" && stepOrder(step) >= stepOrder(r.Step) {
		r.Step = step
	}
}

// stepOrder places the steps before the strategy (verification, migration)
// ahead of the strategy's own, which only the strategy orders.
func stepOrder(step string) int {
	switch step {
	case rollout.StepStarted:
		return 0
	case rollout.StepPreVerified:
		return 1
	case rollout.StepMigrated:
		return 2
	}
	return 3
}

// judge acts on the strategy's progress: finish, fail, time out, or wait.
func judge(snap *snapshot, d *decision, p rollout.Plan) {
	r := d.cv.Status.Rollout
	elapsed := snap.now.Sub(r.StartTime.Time)
	deadline := rollout.Deadline(snap.cv)
	switch {
	case p.Progress.Phase == rollout.Succeeded:
		succeed(snap, d, p.Progress)
	case p.Progress.Phase == rollout.Failed && p.Progress.Misconfigured:
		finishMisconfigured(snap, d, p.Progress.Reason, p.Progress.Message)
	case p.Progress.Phase == rollout.Failed:
		fail(snap, d, p.Progress, snap.rollbackOn || p.Progress.Revert)
	case elapsed >= deadline:
		timeout := p.Progress
		timeout.Reason, timeout.Message = "Timeout", fmt.Sprintf("rollout not finished after %s: %s", deadline, p.Progress.Message)
		fail(snap, d, timeout, snap.rollbackOn)
	default:
		advanceStep(r, p.Progress.Step)
		d.actions = p.Actions
		requeueWithin(snap, d)
	}
}

// requeueWithin looks at an unfinished rollout again after the progress
// interval, or at its deadline when that comes first.
func requeueWithin(snap *snapshot, d *decision) {
	r := snap.cv.Status.Rollout
	left := rollout.Deadline(snap.cv) - snap.now.Sub(r.StartTime.Time)
	d.requeue = max(min(snap.progressInterval, left), 0)
	if d.requeue == 0 {
		d.requeue = snap.progressInterval
	}
}

// succeed finishes a rollout whose workloads run the new version.
func succeed(snap *snapshot, d *decision, p rollout.Progress) {
	st := &d.cv.Status
	r := st.Rollout
	now := snap.now
	d.record = &plannedRecord{rollout: r, outcome: history.OutcomeSuccess, workloads: workloadsOf(snap, p)}
	if snap.cv.Spec.Config != nil {
		d.configVersion = r.Version
	}
	st.SuccessVersion, st.SuccessDigest = r.Version, r.Digest
	st.Signer = r.Signer
	st.Provenance = r.Provenance // nil while unread: filled in when read (attachProvenance)
	st.FailedDigest = ""
	st.Rollout = nil
	setCurrStatus(d.cv, cvv1.StatusSuccess, now)
	setCondition(d.cv, cvv1.ConditionReady, metav1.ConditionTrue, "RolloutComplete", p.Message, now)
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionFalse, "RolloutComplete", p.Message, now)
	setCondition(d.cv, cvv1.ConditionDegraded, metav1.ConditionFalse, "RolloutComplete", "", now)
	if cond := findCondition(st.Conditions, cvv1.ConditionDrifted); cond != nil && cond.Status == metav1.ConditionTrue {
		setCondition(d.cv, cvv1.ConditionDrifted, metav1.ConditionFalse, ReasonNoDrift, p.Message, now)
	}
	if r.Trigger == history.TriggerDrift {
		d.effects = append(d.effects, normal(ReasonDriftRestored, fmt.Sprintf("Restored %s (%s): %s", r.Version, r.Digest, p.Message)))
	}
	d.effects = append(d.effects,
		effect{rolloutDone: r, outcome: history.OutcomeSuccess, log: "Rollout succeeded"},
		normal(ReasonRolloutSucceeded, fmt.Sprintf("Rolled out %s (%s): %s", r.Version, r.Digest, p.Message)),
		notification(notify.Succeeded, r.Version, r.Digest, r.FromVersion, p.Message))
}

// fail ends a rollout whose version does not work. With revert asked and
// a different version to go back to, it first records the intent to roll
// back (the next syncs revert the workloads, see planRollback);
// otherwise it finishes the rollout as failed.
func fail(snap *snapshot, d *decision, p rollout.Progress, revert bool) {
	st := &d.cv.Status
	r := st.Rollout
	if !revert || st.SuccessDigest == "" || st.SuccessDigest == r.Digest {
		finishFailed(snap, d, p, history.OutcomeFailed, "")
		return
	}
	if refused := snap.rollout.rollbackRefused; refused != "" {
		d.effects = append(d.effects, warning(ReasonSignatureRefused, refused))
		finishFailed(snap, d, p, history.OutcomeFailed, "; not rolled back: "+refused)
		return
	}
	r.RollingBack = true
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionFalse, p.Reason, p.Message, snap.now)
}

// planRollback reverts the workloads to status.successVersion and
// finishes the failed rollout once they are back.
func planRollback(snap *snapshot, d *decision) {
	o := snap.rollout
	p := failureFromConditions(snap.cv)
	revert := o.planner.PlanRevert(o.world)
	switch revert.Progress.Phase {
	case rollout.Succeeded:
		finishFailed(snap, d, p, history.OutcomeRolledBack, "; rolled back to "+snap.cv.Status.SuccessVersion)
	case rollout.Failed:
		finishFailed(snap, d, p, history.OutcomeFailed, "; not rolled back: "+revert.Progress.Message)
	default:
		if limit := revertDeadline(snap.cv); len(revert.Actions) == 0 && snap.now.Sub(snap.cv.Status.Rollout.StartTime.Time) >= limit {
			finishFailed(snap, d, p, history.OutcomeFailed, fmt.Sprintf("; not rolled back: the revert had not finished %s after the rollout began: %s",
				limit, revert.Progress.Message))
			return
		}
		d.actions = revert.Actions
		d.requeue = snap.progressInterval
	}
}

// revertDeadline bounds the wait for a rollback, so a previous version that
// cannot come back (say its pods no longer fit) ends the rollout Failed
// instead of leaving it RollingBack for ever. A revert that still has writes
// to make always makes them first: only waiting is bounded. The status does not record when the
// revert began, only that the rollout failed by its deadline, so the revert
// gets the workloads' timeout on top of the whole rollout's deadline: at
// least one full timeout of its own.
func revertDeadline(cv *cvv1.ContainerVersion) time.Duration {
	return rollout.Deadline(cv) + rollout.Timeout(cv)
}

// finishFailed records a failed rollout: history, failedDigest (not tried
// again until the tag moves or the failure is cleared), conditions.
func finishFailed(snap *snapshot, d *decision, p rollout.Progress, outcome, note string) {
	st := &d.cv.Status
	r := st.Rollout
	now := snap.now
	reason := p.Reason + ": " + p.Message
	if outcome == history.OutcomeFailed {
		reason += note // a refused rollback target says why it was not used
	}
	d.record = &plannedRecord{rollout: r, outcome: outcome, reason: reason, workloads: workloadsOf(snap, p)}
	st.FailedDigest = r.Digest
	st.Rollout = nil
	setCurrStatus(d.cv, cvv1.StatusFailed, now)
	message := p.Message + note
	setCondition(d.cv, cvv1.ConditionReady, metav1.ConditionFalse, p.Reason, message, now)
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionFalse, p.Reason, message, now)
	setCondition(d.cv, cvv1.ConditionDegraded, metav1.ConditionTrue, p.Reason, message, now)
	d.effects = append(d.effects,
		effect{rolloutDone: r, outcome: outcome, log: "Rollout failed"},
		warning(ReasonRolloutFailed, fmt.Sprintf("Rollout of %s (%s) failed: %s", r.Version, r.Digest, message)))
	kind := notify.Failed
	if outcome == history.OutcomeRolledBack {
		kind = notify.RolledBack
		d.rolledBack = r.ID
		d.effects = append(d.effects, warning(ReasonRolledBack,
			fmt.Sprintf("Rolled back to %s (%s)", st.SuccessVersion, st.SuccessDigest)))
	}
	d.effects = append(d.effects, notification(kind, r.Version, r.Digest, r.FromVersion, message))
}

// workloadsOf names the workloads a finished rollout covered: those the
// strategy reported, else the selected ones.
func workloadsOf(snap *snapshot, p rollout.Progress) []string {
	if len(p.Workloads) > 0 {
		return p.Workloads
	}
	var keys []string
	for _, w := range snap.rollout.world.Workloads {
		keys = append(keys, w.Key())
	}
	return keys
}

// failureFromConditions recovers why a rollout failed from the Progressing
// condition written when its rollback began.
func failureFromConditions(cv *cvv1.ContainerVersion) rollout.Progress {
	p := rollout.Progress{Phase: rollout.Failed, Reason: "RolloutFailed", Message: "rollout failed"}
	if cond := findCondition(cv.Status.Conditions, cvv1.ConditionProgressing); cond != nil && cond.Reason != "" {
		p.Reason, p.Message = cond.Reason, cond.Message
	}
	return p
}

// finishMisconfigured ends a rollout that could not start because of the
// cluster's configuration. Nothing was changed and the version is not
// blamed: the next poll tries again, so fixing the cluster is enough.
func finishMisconfigured(snap *snapshot, d *decision, reason, message string) {
	d.cv.Status.Rollout = nil
	reportMisconfigured(snap, d, reason, message)
}

// reportMisconfigured marks the CV failed for a configuration problem,
// once per reason and message.
func reportMisconfigured(snap *snapshot, d *decision, reason, message string) {
	if snap.cv.Status.Rollout == nil && conditionIs(snap.cv, cvv1.ConditionDegraded, reason) &&
		findCondition(snap.cv.Status.Conditions, cvv1.ConditionDegraded).Message == truncate(message, 1024) {
		return // already reported
	}
	now := snap.now
	setCurrStatus(d.cv, cvv1.StatusFailed, now)
	setCondition(d.cv, cvv1.ConditionReady, metav1.ConditionFalse, reason, message, now)
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionFalse, reason, message, now)
	setCondition(d.cv, cvv1.ConditionDegraded, metav1.ConditionTrue, reason, message, now)
	d.effects = append(d.effects, warning(ReasonMisconfigured, message))
}

// refuse records that the CV's author lacks a right: Authorized=False
// naming what is missing, one Warning Event per new message, the version
// shown as available. A rollout under way ends without blaming its
// version (no failedDigest), so granting the rights is enough for the
// next poll to roll it out.
func refuse(snap *snapshot, d *decision, message, version, digest string) {
	cv := snap.cv
	cond := findCondition(cv.Status.Conditions, ConditionAuthorized)
	sameVersion := digest == "" || cv.Status.AvailableDigest == digest
	if cv.Status.Rollout == nil && sameVersion && cond != nil &&
		cond.Status == metav1.ConditionFalse && cond.Message == truncate(message, 1024) {
		return // already reported
	}
	now := snap.now
	if d.cv.Status.Rollout != nil {
		d.cv.Status.Rollout = nil
		setCurrStatus(d.cv, cvv1.StatusFailed, now)
		setCondition(d.cv, cvv1.ConditionReady, metav1.ConditionFalse, ReasonForbidden, message, now)
		setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionFalse, ReasonForbidden, message, now)
	}
	if digest != "" {
		markAvailable(d.cv, version, digest, now)
	}
	setCondition(d.cv, ConditionAuthorized, metav1.ConditionFalse, ReasonForbidden, message, now)
	d.effects = append(d.effects, effect{authzRefused: true, log: "Refused: the author lacks rights"}, warning(ReasonForbidden, message))
}

// setAuthorized records an allowed author check in the Authorized condition.
func setAuthorized(snap *snapshot, d *decision, az authzResult) {
	if !az.checked || az.refused != "" {
		return
	}
	reason := "Authorized"
	if az.grandfathered {
		reason = "Grandfathered"
	}
	setCondition(d.cv, ConditionAuthorized, metav1.ConditionTrue, reason, az.message, snap.now)
}
