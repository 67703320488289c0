package controller

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// planRest brings a CV at rest back to its promise: joiners are rolled out
// to the deployed digest (trigger join), drifted workloads are restored
// (trigger drift) or reported, per spec.driftPolicy.
func planRest(snap *snapshot, d *decision) {
	o, cv := snap.rest, snap.cv
	switch {
	case len(o.drifted) > 0 && (driftPolicy(cv) == cvv1.DriftReport || fighting(cv)):
		reportDrift(snap, d)
	case len(o.drifted) == 0 && len(o.joined) == 0:
		clearDrift(snap, d)
	case len(o.drifted) > 0 && o.wouldFight:
		stopFight(snap, d)
	case len(o.drifted) > 0:
		d.corrected = true
		d.effects = append(d.effects, warning(ReasonDriftDetected,
			fmt.Sprintf("%s, not the deployed %s: restoring", joinMismatches(o.drifted), o.target.Image)))
		start(snap, d, o.restoreImage, history.TriggerDrift, o.signature, o.authz)
	default:
		d.effects = append(d.effects, normal(ReasonWorkloadJoined,
			fmt.Sprintf("%s joined the selector: rolling out %s", joinMismatches(o.joined), o.target.Image)))
		start(snap, d, o.restoreImage, history.TriggerJoin, o.signature, o.authz)
	}
}

// restoreTrigger is the trigger of the rollout that a CV at rest needs,
// false when it needs none (nothing differs, or drift is only reported).
func restoreTrigger(cv *cvv1.ContainerVersion, o *restObservation) (string, bool) {
	if len(o.drifted) > 0 {
		if driftPolicy(cv) == cvv1.DriftReport || fighting(cv) || o.wouldFight {
			return "", false
		}
		return history.TriggerDrift, true
	}
	if len(o.joined) > 0 {
		return history.TriggerJoin, true
	}
	return "", false
}

// fighting reports a fight stopped earlier and not resolved since: the
// spec is unchanged since the condition was set.
func fighting(cv *cvv1.ContainerVersion) bool {
	cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted)
	return cond != nil && cond.Status == metav1.ConditionTrue && cond.Reason == ReasonDriftFight &&
		cond.ObservedGeneration == cv.Generation
}

// reportDrift sets Drifted=True naming what each drifted workload runs,
// writing only when the message changes.
func reportDrift(snap *snapshot, d *decision) {
	o, cv := snap.rest, snap.cv
	reason := ReasonDriftDetected
	message := fmt.Sprintf("%s, not the deployed %s (driftPolicy %s)", joinMismatches(o.drifted), o.target.Image, driftPolicy(cv))
	cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted)
	if fighting(cv) {
		reason, message = cond.Reason, cond.Message
	}
	if cond != nil && cond.Status == metav1.ConditionTrue && cond.Reason == reason && cond.Message == truncate(message, 1024) {
		return
	}
	setCondition(d.cv, cvv1.ConditionDrifted, metav1.ConditionTrue, reason, message, snap.now)
	d.effects = append(d.effects, warning(reason, message))
}

// stopFight stops correcting a CV whose workloads another writer keeps
// reverting, and names that writer.
func stopFight(snap *snapshot, d *decision) {
	o := snap.rest
	message := fmt.Sprintf("stopped restoring after %d corrections in %s: %s, not the deployed %s; "+
		"field manager %q keeps changing it (make it stop, or set spec.driftPolicy: Report)",
		FightCorrections, FightWindow, joinMismatches(o.drifted), o.target.Image, o.otherManager)
	setCondition(d.cv, cvv1.ConditionDrifted, metav1.ConditionTrue, ReasonDriftFight, message, snap.now)
	d.effects = append(d.effects, warning(ReasonDriftFight, message), effect{log: "Drift fight; stopped restoring"})
}

// clearDrift sets Drifted=False once every workload runs the deployed image.
func clearDrift(snap *snapshot, d *decision) {
	cond := findCondition(snap.cv.Status.Conditions, cvv1.ConditionDrifted)
	if cond == nil || cond.Status == metav1.ConditionFalse {
		return
	}
	setCondition(d.cv, cvv1.ConditionDrifted, metav1.ConditionFalse, ReasonNoDrift, "every workload runs the deployed image", snap.now)
}

// planPoll acts on a registry poll.
func planPoll(snap *snapshot, d *decision) {
	o := snap.poll
	switch {
	case o.misconfigured != "":
		reportMisconfigured(snap, d, "InvalidVersionSyntax", o.misconfigured)
	case o.refused != "":
		refuse(snap, d, o.refused, "", "")
	case o.deferred:
		// paced by the request budget: tried again soon, nothing to report
	case o.err != nil:
		registryError(snap, d)
	case o.action != syncer.StartRollout:
		recordPoll(snap, d)
	case o.pending:
		// a verdict is being read (the index's platforms): its read wakes the CV
	case !o.verdict.Allowed:
		hold(snap, d)
	default:
		trigger := o.trigger
		if released(snap.cv, o.version, o.img.Digest) {
			trigger = history.TriggerRelease
		}
		if o.promotion != nil && o.signature.allowed() && o.authz.refused == "" {
			trigger = history.TriggerPromote
			d.effects = append(d.effects, notification(notify.Promoted, o.version, o.img.Digest, o.promotion.From, o.promotion.Reason))
		}
		start(snap, d, o.img, trigger, o.signature, o.authz)
	}
}

// registryError surfaces a failed poll, once per message. The next poll
// stays on the CV's schedule: the registry layer already backs off per host.
func registryError(snap *snapshot, d *decision) {
	cv := snap.cv
	message := fmt.Sprintf("cannot resolve %s:%s: %v", cv.Spec.ImageRepo, cv.Spec.Tag, snap.poll.err)
	if cond := findCondition(cv.Status.Conditions, cvv1.ConditionDegraded); cond != nil &&
		cond.Status == metav1.ConditionTrue && cond.Reason == ReasonRegistryError && cond.Message == truncate(message, 1024) {
		return
	}
	setCondition(d.cv, cvv1.ConditionDegraded, metav1.ConditionTrue, ReasonRegistryError, message, snap.now)
	d.effects = append(d.effects, warning(ReasonRegistryError, message), effect{log: "Registry error", detail: message})
}

// recordPoll persists lastPolled now and then (syncer.ShouldPersistLastPolled)
// and clears a registry error condition once the registry answers again.
func recordPoll(snap *snapshot, d *decision) {
	cv := snap.cv
	var persisted metav1.Time
	if cv.Status.LastPolled != nil {
		persisted = *cv.Status.LastPolled
	}
	degraded := findCondition(cv.Status.Conditions, cvv1.ConditionDegraded)
	recovered := degraded != nil && degraded.Status == metav1.ConditionTrue && degraded.Reason == ReasonRegistryError
	if !recovered && !syncer.ShouldPersistLastPolled(persisted.Time, snap.now, pollInterval(cv), liveness(cv), snap.lastPolledEvery) {
		return
	}
	d.cv.Status.LastPolled = &metav1.Time{Time: snap.now}
	if recovered {
		setCondition(d.cv, cvv1.ConditionDegraded, metav1.ConditionFalse, "RegistryRecovered", "the registry answers again", snap.now)
	}
}

// hold records a version the policy keeps back: shown as available, with a
// ReleaseBlocked condition and one Event per held digest. A hold already
// reported whose message changed (minAge's eligible time moved: the build
// time was read, or minAge was edited) is updated without another Event.
func hold(snap *snapshot, d *decision) {
	o, cv := snap.poll, snap.cv
	if o.heldUntil != nil {
		d.requeue = max(o.heldUntil.Sub(snap.now), time.Second) // minAge: look again when it is old enough
	}
	markAvailable(d.cv, o.version, o.img.Digest, snap.now)
	if cv.Status.AvailableDigest == o.img.Digest && conditionIs(cv, cvv1.ConditionReleaseBlocked, o.verdict.Reason) {
		if findCondition(cv.Status.Conditions, cvv1.ConditionReleaseBlocked).Message != truncate(o.verdict.Message, 1024) {
			setHeldUntil(d.cv, o.heldUntil)
			setCondition(d.cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, o.verdict.Reason, o.verdict.Message, snap.now)
		}
		return // already reported
	}
	d.cv.Status.LastPolled = &metav1.Time{Time: snap.now}
	setHeldUntil(d.cv, o.heldUntil) // minAge: shown with the time the version becomes eligible
	setCondition(d.cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, o.verdict.Reason, o.verdict.Message, snap.now)
	d.effects = append(d.effects, normal(ReasonReleaseBlocked, o.verdict.Message),
		notification(notify.Blocked, o.version, o.img.Digest, cv.Status.CurrVersion, o.verdict.Message))
}

// start records the intent of a new rollout in status, before any workload
// is touched: the status write is the commit point, and the rollout's first
// step runs in the next sync (the write's echo), so a controller restarted
// at any point resumes it. It is also the one place a digest is chosen for
// deployment (poll, trigger, webhook, release, promotion, drift restore,
// join), so the signature and author verdicts are applied here.
func start(snap *snapshot, d *decision, img poller.ResolvedImage, trigger string, sig signatureVerdict, az authzResult) {
	cv := snap.cv
	version := versionName(cv, img)
	if !sig.allowed() {
		refuseUnsigned(snap, d, img, trigger, sig)
		return
	}
	if az.refused != "" {
		refuse(snap, d, "not rolling out "+version+": "+az.refused, version, img.Digest)
		return
	}
	setAuthorized(snap, d, az)
	st := &d.cv.Status
	now := snap.now
	r := &cvv1.RolloutStatus{
		Version: version, Digest: img.Digest, FromVersion: st.SuccessVersion, FromDigest: st.SuccessDigest,
		Trigger: trigger, StartTime: metav1.Time{Time: now}, Step: rollout.FirstStep(cv), Provenance: snap.startProvenance,
	}
	r.ID = newRolloutID(cv, r)
	if trigger == history.TriggerDrift || trigger == history.TriggerJoin {
		// The deployed digest passed its verifications and migrations when
		// it first rolled out: restoring it runs only the strategy.
		r.Step = rollout.StepMigrated
	}
	if sig.applies {
		r.Signer = sig.result.Signer
		setVerified(d.cv, img.Digest, sig, now)
	}
	st.Rollout = r
	st.CurrVersion, st.CurrDigest = version, img.Digest
	setCurrStatus(d.cv, cvv1.StatusProgressing, now)
	st.LastPolled = &metav1.Time{Time: now}
	clearHold(d.cv, metav1.Time{Time: now})
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionTrue, ReasonRolloutStarted,
		fmt.Sprintf("rolling out %s (%s)", version, img.Digest), now)
	d.effects = append(d.effects, normal(ReasonRolloutStarted, fmt.Sprintf("Rolling out %s:%s (%s) from %s, trigger %s",
		cv.Spec.ImageRepo, version, img.Digest, orNone(r.FromVersion), trigger)))
	if w, ok := auditWarning(version, img.Digest, sig); ok {
		d.effects = append(d.effects, w)
	}
	d.effects = append(d.effects, notification(notify.Started, version, img.Digest, r.FromVersion, "trigger "+trigger),
		effect{log: "Rollout started"})
}

// refuseUnsigned reports a digest refused for its signature: workloads stay
// as they are, the digest is shown as available but held, and the refusal
// goes to the condition, an Event, the history (outcome Blocked) and the
// Blocked notification, once per digest and reason. The syncer keeps
// polling, so a signature pushed later lets the next poll roll out.
func refuseUnsigned(snap *snapshot, d *decision, img poller.ResolvedImage, trigger string, v signatureVerdict) {
	cv := snap.cv
	version := versionName(cv, img)
	if cv.Status.AvailableDigest == img.Digest && conditionIs(cv, cvv1.ConditionReleaseBlocked, v.result.Reason) {
		return // already reported
	}
	now := snap.now
	message := fmt.Sprintf("refused %s (%s): %s", version, img.Digest, v.result.Message)
	st := &d.cv.Status
	markAvailable(d.cv, version, img.Digest, now)
	st.LastPolled = &metav1.Time{Time: now}
	setCondition(d.cv, cvv1.ConditionVerified, metav1.ConditionFalse, v.result.Reason, message, now)
	setCondition(d.cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, v.result.Reason, message, now)
	blocked := &cvv1.RolloutStatus{Version: version, Digest: img.Digest, FromVersion: st.SuccessVersion,
		FromDigest: st.SuccessDigest, Trigger: trigger, StartTime: metav1.Time{Time: now}}
	d.record = &plannedRecord{rollout: blocked, outcome: history.OutcomeBlocked, reason: v.result.Reason + ": " + message}
	d.effects = append(d.effects, warning(ReasonSignatureRefused, message), effect{log: "Image refused: signature"},
		notification(notify.Blocked, version, img.Digest, st.SuccessVersion, message))
}
