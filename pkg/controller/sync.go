package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Event reasons recorded on ContainerVersions.
const (
	ReasonRolloutStarted   = "RolloutStarted"
	ReasonRolloutSucceeded = "RolloutSucceeded"
	ReasonRolloutFailed    = "RolloutFailed"
	ReasonRolledBack       = "RolledBack"
	ReasonRegistryError    = "RegistryError"
	ReasonMisconfigured    = "Misconfigured"
)

// sync is the reconcile of one CV key: finish or advance a rollout under
// way, otherwise poll the registry when due and start a rollout when the tag
// moved. It returns an error only when a retry can help.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // a malformed key never becomes valid
	}
	cached, err := c.cvLister.ContainerVersions(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.stopSyncer(key)
		return nil
	}
	if err != nil {
		return err
	}
	if cached.Spec.Suspend {
		c.stopSyncer(key)
		return nil
	}
	ctx = withStatusRead(ctx, cached)
	if cv, ok := c.withProvenance(cached); ok {
		if err := c.updateStatus(ctx, cv); err != nil {
			return err
		}
		cached = cv // the fresh copy: no later write conflicts with this one
	}
	if cached.Status.Rollout != nil {
		return c.advance(ctx, cached.DeepCopy()) // never mutate the informer's copy
	}
	trigger, reqKey, reqValue := pendingRequest(cached)
	if reqKey == "" {
		if acted, err := c.reconcileWorkloads(ctx, cached); acted || err != nil {
			return err
		}
	}
	s := c.syncerFor(key)
	if c.waitForRecheck(s, reqValue) {
		return nil
	}
	if reqKey != "" {
		c.forcePoll(s, trigger)
		if trigger == history.TriggerWebhook {
			c.notePush(cached)
		}
	}
	if st := cached.Status; st.AvailableDigest != "" && released(cached, st.AvailableVersion, st.AvailableDigest) {
		s.force(history.TriggerRelease) // a held version was approved: act now, not at the next poll
	}
	// Most syncs are a timer or an echo of the controller's own status
	// write finding nothing due: they read the cached CV and copy nothing.
	now := c.clock.Now()
	interval, _ := c.pollEvery(cached, now)
	due, wait := s.due(cached, interval, now)
	if !due {
		c.queue.AddAfter(key, wait)
		return nil
	}
	cv := cached.DeepCopy()
	if reqKey == AnnotationClearFailed {
		if err := c.clearFailedDigest(ctx, cv); err != nil {
			return err
		}
	}
	if err := c.poll(ctx, cv, s); err != nil || reqKey == "" {
		return err
	}
	if reqKey == AnnotationPollRequest && cv.Status.Rollout == nil && c.scheduleRecheck(s, reqValue) {
		return nil // the push event's digest is not served yet: look again shortly
	}
	return c.acknowledge(ctx, cached, reqKey, reqValue)
}

// poll asks the registry where the tag points and acts on the answer.
func (c *Controller) poll(ctx context.Context, cv *cvv1.ContainerVersion, s *syncerState) error {
	versionSyntax, err := registry.CompileVersionSyntax(cv.Spec.VersionSyntax)
	if err != nil {
		return c.reportMisconfigured(ctx, cv, "InvalidVersionSyntax", err.Error())
	}
	maxAge := pollInterval(cv)
	if s.forcedBy() != "" {
		maxAge = c.triggers.maxAge(s.key, c.clock.Now())
	}
	s.seen = ""
	if ok, err := c.authorizePoll(ctx, cv); !ok { // issue 19 hook: pull Secrets
		s.polled(c.clock.Now()) // a refused poll waits for the next one
		c.queue.AddAfter(s.key, s.interval)
		return err
	}
	start := c.clock.Now()
	img, err := c.resolve(ctx, cv, versionSyntax, maxAge, s.forcedBy() != "")
	s.seen = img.Digest
	now := c.clock.Now()
	c.metrics.PollDuration.Observe(now.Sub(start).Seconds())
	trigger := s.polled(now)
	c.queue.AddAfter(s.key, s.interval)
	if err != nil {
		c.metrics.PollsTotal.WithLabelValues("error").Inc()
		return c.reportRegistryError(ctx, cv, s, err)
	}
	s.lastError = ""
	switch syncer.Decide(&cv.Status, img.Digest) {
	case syncer.StartRollout:
		c.metrics.PollsTotal.WithLabelValues("changed").Inc()
		if trigger == history.TriggerPoll && cv.Status.CurrDigest != "" {
			c.noteMiss(cv) // a move, not a new CV's first rollout
		}
		version := versionName(cv, img)
		if verdict := c.gate(cv, version, img.Digest); !verdict.Allowed {
			return c.hold(ctx, cv, img, version, verdict)
		}
		if released(cv, version, img.Digest) {
			trigger = history.TriggerRelease
		}
		if ok, err := c.authorizeRollout(ctx, cv, version, img.Digest); !ok { // issue 19 hook
			return err
		}
		if promotion, ok := c.promotionOf(ctx, cv, img.Digest); ok {
			trigger = history.TriggerPromote
			c.notify(ctx, cv, notify.Promoted, version, img.Digest, promotion.From, promotion.Reason)
		}
		return c.startRollout(ctx, cv, img, trigger)
	default:
		c.metrics.PollsTotal.WithLabelValues("unchanged").Inc()
		return c.recordPoll(ctx, cv, now)
	}
}

// recordPoll persists lastPolled now and then (see ShouldPersistLastPolled)
// and clears a registry error condition once the registry answers again.
func (c *Controller) recordPoll(ctx context.Context, cv *cvv1.ContainerVersion, now time.Time) error {
	var persisted time.Time
	if cv.Status.LastPolled != nil {
		persisted = cv.Status.LastPolled.Time
	}
	degraded := findCondition(cv.Status.Conditions, cvv1.ConditionDegraded)
	registryRecovered := degraded != nil && degraded.Reason == ReasonRegistryError
	if !registryRecovered && !syncer.ShouldPersistLastPolled(persisted, now, pollInterval(cv), liveness(cv), c.opts.LastPolledEvery) {
		return nil
	}
	cv.Status.LastPolled = &metav1.Time{Time: now}
	if registryRecovered {
		setCondition(cv, cvv1.ConditionDegraded, metav1.ConditionFalse, "RegistryRecovered", "the registry answers again", now)
	}
	return c.updateStatus(ctx, cv)
}

// startRollout makes the intent durable in status before touching any
// workload, so a controller restarted at any point resumes this rollout.
//
// It is also the one place a digest is chosen for deployment (poll,
// trigger, webhook, release, promotion, drift restore, join), so the
// image's signature is checked here, before anything is written.
func (c *Controller) startRollout(ctx context.Context, cv *cvv1.ContainerVersion, img poller.ResolvedImage, trigger string) error {
	signature, err := c.checkSignature(ctx, cv, img.Digest)
	if err != nil {
		return err
	}
	if !signature.allowed() {
		return c.refuseUnsigned(ctx, cv, img, trigger, signature)
	}
	now := c.clock.Now()
	version := versionName(cv, img)
	from, fromDigest := cv.Status.SuccessVersion, cv.Status.SuccessDigest
	cv.Status.Rollout = &cvv1.RolloutStatus{
		Version: version, Digest: img.Digest, FromVersion: from, FromDigest: fromDigest,
		Trigger: trigger, StartTime: metav1.Time{Time: now}, Step: rollout.FirstStep(cv),
	}
	if trigger == history.TriggerDrift || trigger == history.TriggerJoin {
		// The deployed digest passed its verifications and migrations when
		// it first rolled out: restoring it runs only the strategy.
		cv.Status.Rollout.Step = rollout.StepMigrated
	}
	c.requestProvenance(ctx, cv, img.Digest)
	cv.Status.Rollout.Provenance = c.provenanceOf(img.Digest)
	if signature.applies {
		cv.Status.Rollout.Signer = signature.result.Signer
		c.setVerified(cv, img.Digest, signature)
	}
	cv.Status.CurrVersion, cv.Status.CurrDigest = version, img.Digest
	setCurrStatus(cv, cvv1.StatusProgressing, now)
	cv.Status.LastPolled = &metav1.Time{Time: now}
	clearHold(cv, metav1.Time{Time: now})
	setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionTrue, ReasonRolloutStarted,
		fmt.Sprintf("rolling out %s (%s)", version, img.Digest), now)
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	c.recorder.Eventf(cv, corev1.EventTypeNormal, ReasonRolloutStarted, "Rolling out %s:%s (%s) from %s, trigger %s",
		cv.Spec.ImageRepo, version, img.Digest, orNone(from), trigger)
	c.auditWarning(cv, version, img.Digest, signature)
	c.notify(ctx, cv, notify.Started, version, img.Digest, from, "trigger "+trigger)
	return c.advance(ctx, cv)
}

// advance moves the rollout recorded in status forward by one step: first
// the verifications and migrations that must pass before any workload
// changes, then the strategy.
func (c *Controller) advance(ctx context.Context, cv *cvv1.ContainerVersion) error {
	r := cv.Status.Rollout
	strategy, ok := c.strategies.For(cv)
	if !ok {
		return c.finishMisconfigured(ctx, cv, rollout.Progress{Reason: "StrategyNotSupported",
			Message: fmt.Sprintf("strategy %q is not supported by this controller version", rollout.StrategyKind(cv))})
	}
	if r.RollingBack {
		// A restart interrupted a rollback: finish it, never re-patch the
		// version that failed.
		return c.fail(ctx, cv, strategy, failureFromConditions(cv), true)
	}
	target, err := pinnedTarget(cv.Spec.ImageRepo, r.Version, r.Digest)
	if err != nil {
		return c.finishMisconfigured(ctx, cv, rollout.Progress{Reason: "InvalidDigest", Message: err.Error()})
	}
	if ok, err := c.authorizeRollout(ctx, cv, r.Version, r.Digest); !ok { // issue 19 hook
		return err
	}
	p, err := c.lifecycle.Prepare(ctx, cv, target, func(ctx context.Context, step string) error {
		return c.recordStep(ctx, cv, step)
	})
	if err != nil {
		return err
	}
	if p.Phase == rollout.Failed {
		return c.fail(ctx, cv, strategy, p, p.Revert)
	}
	if p.Phase == rollout.Succeeded {
		if p, err = strategy.Advance(ctx, cv, target); err != nil {
			return err
		}
	}
	return c.judge(ctx, cv, strategy, p)
}

// judge acts on the progress of a rollout: finish it, fail it, or look
// again after the progress interval.
func (c *Controller) judge(ctx context.Context, cv *cvv1.ContainerVersion, strategy rollout.Strategy, p rollout.Progress) error {
	elapsed := c.clock.Since(cv.Status.Rollout.StartTime.Time)
	switch {
	case p.Phase == rollout.Succeeded:
		return c.succeed(ctx, cv, p)
	case p.Phase == rollout.Failed && p.Misconfigured:
		return c.finishMisconfigured(ctx, cv, p)
	case p.Phase == rollout.Failed:
		return c.fail(ctx, cv, strategy, p, c.rollbackEnabled(cv) || p.Revert)
	case elapsed >= rollout.Deadline(cv):
		p.Reason, p.Message = "Timeout", fmt.Sprintf("rollout not finished after %s: %s", rollout.Deadline(cv), p.Message)
		return c.fail(ctx, cv, strategy, p, c.rollbackEnabled(cv))
	}
	if p.Step != "" {
		if err := c.recordStep(ctx, cv, p.Step); err != nil {
			return err
		}
	}
	c.queue.AddAfter(namespacedKey(cv), min(c.opts.ProgressInterval, rollout.Deadline(cv)-elapsed))
	return nil
}

func (c *Controller) succeed(ctx context.Context, cv *cvv1.ContainerVersion, p rollout.Progress) error {
	r := cv.Status.Rollout
	now := c.clock.Now()
	if err := c.appendHistory(ctx, cv, p, history.OutcomeSuccess, ""); err != nil {
		return err
	}
	if err := c.syncConfigKey(ctx, cv, r.Version); err != nil {
		return err
	}
	cv.Status.SuccessVersion, cv.Status.SuccessDigest = r.Version, r.Digest
	cv.Status.Signer = r.Signer
	cv.Status.Provenance = c.rolloutProvenance(r)
	cv.Status.FailedDigest = ""
	cv.Status.Rollout = nil
	setCurrStatus(cv, cvv1.StatusSuccess, now)
	setCondition(cv, cvv1.ConditionReady, metav1.ConditionTrue, "RolloutComplete", p.Message, now)
	setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionFalse, "RolloutComplete", p.Message, now)
	setCondition(cv, cvv1.ConditionDegraded, metav1.ConditionFalse, "RolloutComplete", "", now)
	if cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted); cond != nil && cond.Status == metav1.ConditionTrue {
		setCondition(cv, cvv1.ConditionDrifted, metav1.ConditionFalse, ReasonNoDrift, p.Message, now)
	}
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	if r.Trigger == history.TriggerDrift {
		c.recorder.Eventf(cv, corev1.EventTypeNormal, ReasonDriftRestored, "Restored %s (%s): %s", r.Version, r.Digest, p.Message)
	}
	c.observeRollout(history.OutcomeSuccess, r, now)
	c.recorder.Eventf(cv, corev1.EventTypeNormal, ReasonRolloutSucceeded, "Rolled out %s (%s): %s", r.Version, r.Digest, p.Message)
	c.notify(ctx, cv, notify.Succeeded, r.Version, r.Digest, r.FromVersion, p.Message)
	klog.InfoS("Rollout succeeded", "cv", klog.KObj(cv), "version", r.Version, "digest", r.Digest)
	return nil
}

// fail ends a rollout whose version does not work: roll back when revert
// is asked and there is a different version to go back to, and remember the
// digest so it is not retried until the tag moves on.
func (c *Controller) fail(ctx context.Context, cv *cvv1.ContainerVersion, strategy rollout.Strategy, p rollout.Progress, revert bool) error {
	r := cv.Status.Rollout
	now := c.clock.Now()
	outcome, note := history.OutcomeFailed, ""
	if revert && cv.Status.SuccessDigest != "" && cv.Status.SuccessDigest != r.Digest {
		refused, err := c.rollbackRefused(ctx, cv)
		switch {
		case err != nil:
			return err
		case refused != "":
			note = "; not rolled back: " + refused
		default:
			if err := c.rollBack(ctx, cv, strategy, p); err != nil {
				return err
			}
			outcome, note = history.OutcomeRolledBack, fmt.Sprintf("; rolled back to %s", cv.Status.SuccessVersion)
		}
	}
	reason := p.Reason + ": " + p.Message
	if outcome == history.OutcomeFailed {
		reason += note // a refused rollback target says why it was not used
	}
	if err := c.appendHistory(ctx, cv, p, outcome, reason); err != nil {
		return err
	}
	cv.Status.FailedDigest = r.Digest
	cv.Status.Rollout = nil
	setCurrStatus(cv, cvv1.StatusFailed, now)
	message := p.Message + note
	setCondition(cv, cvv1.ConditionReady, metav1.ConditionFalse, p.Reason, message, now)
	setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionFalse, p.Reason, message, now)
	setCondition(cv, cvv1.ConditionDegraded, metav1.ConditionTrue, p.Reason, message, now)
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	c.observeRollout(outcome, r, now)
	c.recorder.Eventf(cv, corev1.EventTypeWarning, ReasonRolloutFailed, "Rollout of %s (%s) failed: %s", r.Version, r.Digest, message)
	kind := notify.Failed
	if outcome == history.OutcomeRolledBack {
		kind = notify.RolledBack
		c.recorder.Eventf(cv, corev1.EventTypeWarning, ReasonRolledBack, "Rolled back to %s (%s)", cv.Status.SuccessVersion, cv.Status.SuccessDigest)
	}
	c.notify(ctx, cv, kind, r.Version, r.Digest, r.FromVersion, message)
	return nil
}

// rollBack records the failure and the intent to roll back in status first,
// so a restart mid-rollback resumes the rollback, then reverts the workloads.
func (c *Controller) rollBack(ctx context.Context, cv *cvv1.ContainerVersion, strategy rollout.Strategy, p rollout.Progress) error {
	if !cv.Status.Rollout.RollingBack {
		cv.Status.Rollout.RollingBack = true
		setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionFalse, p.Reason, p.Message, c.clock.Now())
		if err := c.updateStatus(ctx, cv); err != nil {
			return err
		}
	}
	previous, err := pinnedTarget(cv.Spec.ImageRepo, cv.Status.SuccessVersion, cv.Status.SuccessDigest)
	if err == nil {
		err = strategy.Revert(ctx, cv, previous)
	}
	if err != nil {
		return fmt.Errorf("rolling back %s to %s: %w", namespacedKey(cv), cv.Status.SuccessVersion, err)
	}
	return nil
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
func (c *Controller) finishMisconfigured(ctx context.Context, cv *cvv1.ContainerVersion, p rollout.Progress) error {
	cv.Status.Rollout = nil
	return c.reportMisconfigured(ctx, cv, p.Reason, p.Message)
}

func (c *Controller) reportMisconfigured(ctx context.Context, cv *cvv1.ContainerVersion, reason, message string) error {
	now := c.clock.Now()
	setCurrStatus(cv, cvv1.StatusFailed, now)
	setCondition(cv, cvv1.ConditionReady, metav1.ConditionFalse, reason, message, now)
	setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionFalse, reason, message, now)
	setCondition(cv, cvv1.ConditionDegraded, metav1.ConditionTrue, reason, message, now)
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonMisconfigured, message)
	return nil
}

// reportRegistryError surfaces a failed poll. The next poll stays on the
// CV's schedule: the registry layer already backs off per host.
func (c *Controller) reportRegistryError(ctx context.Context, cv *cvv1.ContainerVersion, s *syncerState, err error) error {
	message := fmt.Sprintf("cannot resolve %s:%s: %v", cv.Spec.ImageRepo, cv.Spec.Tag, err)
	if message == s.lastError {
		return nil
	}
	s.lastError = message
	klog.InfoS("Registry error", "cv", klog.KObj(cv), "err", err)
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonRegistryError, message)
	setCondition(cv, cvv1.ConditionDegraded, metav1.ConditionTrue, ReasonRegistryError, message, c.clock.Now())
	return c.updateStatus(ctx, cv)
}

func (c *Controller) observeRollout(outcome string, r *cvv1.RolloutStatus, now time.Time) {
	c.metrics.RolloutsTotal.WithLabelValues(outcome).Inc()
	c.metrics.RolloutDuration.WithLabelValues(outcome).Observe(now.Sub(r.StartTime.Time).Seconds())
}

func (c *Controller) rollbackEnabled(cv *cvv1.ContainerVersion) bool {
	return cv.Spec.Rollback.Enabled || c.settings().DefaultRollback
}

func pinnedTarget(repo, version, digest string) (rollout.Target, error) {
	image, err := workload.PinnedImage(repo, version, digest)
	if err != nil {
		return rollout.Target{}, err
	}
	return rollout.Target{Version: version, Digest: digest, Image: image}, nil
}

// versionName is the version tag the registry found, or, when no tag on the
// image matches versionSyntax, the watched tag itself: the digest pin keeps
// the rollout exact either way.
func versionName(cv *cvv1.ContainerVersion, img poller.ResolvedImage) string {
	if img.Version != "" {
		return img.Version
	}
	return cv.Spec.Tag
}

// rolloutProvenance is the provenance recorded for a rollout's digest:
// what status holds, else what was read since the last status write.
func (c *Controller) rolloutProvenance(r *cvv1.RolloutStatus) *cvv1.Provenance {
	if r.Provenance != nil {
		return r.Provenance
	}
	return c.provenanceOf(r.Digest)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
