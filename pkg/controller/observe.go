package controller

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// snapshot is everything one sync knows, read once before anything is
// decided: the cached CV, the workloads it selects, its pending requests,
// and, depending on where the CV stands, what its workloads run (at rest),
// what the registry said (a poll that was due), or the rollout's world
// (under way). plan reads only the snapshot.
type snapshot struct {
	cv  *cvv1.ContainerVersion // the informer's copy: never modified
	now time.Time
	// workloads are those cv selects (selectWorkloads), read once and
	// handed to every read of the sync that needs them.
	workloads []workload.Workload
	// requests are the pending requests acted on by this sync.
	requests []*cvv1.ContainerVersionRequest
	// spent are clear-failed requests whose failure is gone (splitSpent):
	// deleted after this sync, with no effect.
	spent []*cvv1.ContainerVersionRequest
	// provenance is provenance read since status last recorded it, for
	// provenanceDigest.
	provenance       *cvv1.Provenance
	provenanceDigest string
	// historyOn and rollbackOn are the CV's settings with the controller's defaults.
	historyOn, rollbackOn bool
	// progressInterval bounds the wait before an unfinished rollout is looked at again.
	progressInterval time.Duration
	// lastPolledEvery is Options.LastPolledEvery.
	lastPolledEvery time.Duration
	// startProvenance is the known provenance of a digest a rollout may
	// start with (nil while unread).
	startProvenance *cvv1.Provenance

	// writeBackResult is an outcome the git writer reported, not yet in
	// status (writeback.go).
	writeBackResult *cvv1.WriteBackStatus
	// imported is the last-known-good version a CV created by `state
	// import` restores first (cvv1.AnnotationImported), on its first sync.
	imported *rollout.Target

	// promotion is what is known of the source a CV follows (promotion.go).
	promotion *promotionObservation

	rest    *restObservation
	poll    *pollObservation
	rollout *rolloutObservation
}

// restObservation is what the workloads of a CV at rest run.
type restObservation struct {
	target          rollout.Target
	joined, drifted []mismatch
	// wouldFight: another correction now would be a fight (drift.go).
	wouldFight   bool
	otherManager string
	// signature and authz are the verdicts on restoreImage, read only
	// when a restore starts (startsRollout).
	signature     signatureVerdict
	authz         authzResult
	startsRollout bool
	restoreImage  poller.ResolvedImage
	// driftReported: the Drifted condition is True, to be cleared when
	// nothing differs any more.
	driftReported bool
	// needed: planning the workloads' state changes something (acts).
	needed bool
}

// pollObservation is one registry poll and the verdicts on its answer.
type pollObservation struct {
	trigger string
	// misconfigured is set when the poll could not be made (invalid versionSyntax).
	misconfigured string
	// refused is set when the author may not read the pull Secrets.
	refused string
	img     poller.ResolvedImage
	err     error
	action  syncer.Action
	version string
	// verdict is the release gate's answer on a new version.
	verdict policy.Verdict
	// signature, authz and promotion are read only for a version the gate lets through.
	signature signatureVerdict
	authz     authzResult
	promotion *history.Record
	// recheck is set when a push event's digest was not served yet: the
	// request stays pending and is looked at again.
	recheck bool
	// heldUntil is when a digest held by spec.policy.minAge becomes
	// eligible (status.heldUntil).
	heldUntil *time.Time
	// pending: a verdict the new digest needs is still being read (the
	// image index's platforms); nothing is written, its read wakes the CV.
	pending bool
	// deferred: this controller's request budget for the registry had no
	// token in time; the poll is tried again soon (budgetRetry) and nothing
	// is reported, since the registry did nothing wrong.
	deferred bool
}

// rolloutObservation is the world of a rollout under way.
type rolloutObservation struct {
	lifecycle *rollout.Lifecycle
	planner   rollout.Planner
	targetErr error
	world     rollout.World
	authz     authzResult
	// rollbackRefused says why the rollback target may not be used
	// (its signature), "" when it may.
	rollbackRefused string
}

// authzResult is the author check's answer: refused names what is
// missing; message describes an allowed CV for the Authorized condition.
type authzResult struct {
	checked       bool
	refused       string
	grandfathered bool
	message       string
}

// observe reads the snapshot of one sync, starting with the workloads the
// CV selects. It returns an error only when a retry can help (a cache or
// API read failed).
func (c *Controller) observe(ctx context.Context, s *syncerState, cached *cvv1.ContainerVersion) (*snapshot, error) {
	workloads, err := c.selectWorkloads(cached)
	if err != nil {
		return nil, err
	}
	return c.observeSelected(ctx, s, cached, workloads)
}

// selectWorkloads is the one definition of the workloads a CV selects:
// those of its namespace matching spec.selector, from the caches. A nil,
// empty or malformed selector selects nothing: admission refuses them (an
// empty selector would match the whole namespace).
func (c *Controller) selectWorkloads(cv *cvv1.ContainerVersion) ([]workload.Workload, error) {
	if cv.Spec.Selector == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil, nil
	}
	return c.workloads.Select(cv.Namespace, sel)
}

// observeSelected is observe with the CV's workloads already selected.
func (c *Controller) observeSelected(ctx context.Context, s *syncerState, cached *cvv1.ContainerVersion, workloads []workload.Workload) (*snapshot, error) {
	snap := &snapshot{
		cv: cached, workloads: workloads, now: c.clock.Now(),
		historyOn: cached.Spec.History.Enabled || c.settings().DefaultHistory, rollbackOn: c.rollbackEnabled(cached),
		progressInterval: c.opts.ProgressInterval, lastPolledEvery: c.opts.LastPolledEvery,
	}
	snap.requests, snap.spent = splitSpent(cached, c.pendingRequests(cached))
	snap.provenance, snap.provenanceDigest = c.unwrittenProvenance(&cached.Status)
	snap.writeBackResult = c.writeBacks.get(namespacedKey(cached))
	if cached.Status.Rollout != nil {
		r, err := c.observeRollout(ctx, cached, workloads)
		snap.rollout = r
		return snap, err
	}
	if snap.imported = importedTarget(cached); snap.imported != nil {
		return snap, nil
	}
	if len(snap.requests) == 0 || c.follows(cached) {
		rest, err := c.observeRest(ctx, cached, workloads)
		snap.rest = rest
		if err != nil || rest != nil && rest.acts() {
			if rest != nil && rest.startsRollout {
				snap.startProvenance = c.provenanceOf(rest.restoreImage.Digest)
			}
			return snap, err
		}
	}
	if c.follows(cached) {
		var err error
		snap.promotion, err = c.observePromotion(ctx, failureCleared(cached, snap.requests), workloads)
		if p := snap.promotion; p != nil && p.decision.Promote {
			snap.startProvenance = c.provenanceOf(p.decision.Digest)
		}
		return snap, err
	}
	poll, err := c.observePoll(ctx, s, snap)
	snap.poll = poll
	if poll != nil && poll.action == syncer.StartRollout {
		snap.startProvenance = c.provenanceOf(poll.img.Digest)
	}
	return snap, err
}

// observeRollout gathers the world a rollout under way is planned from,
// around the workloads cv selects.
func (c *Controller) observeRollout(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (*rolloutObservation, error) {
	r := cv.Status.Rollout
	o := &rolloutObservation{lifecycle: c.lifecycle}
	planner, ok := c.planners.For(cv)
	if !ok {
		return o, nil
	}
	o.planner = planner
	target, err := pinnedTarget(cv.Spec.ImageRepo, r.Version, r.Digest)
	if err != nil {
		o.targetErr = err
		return o, nil
	}
	if o.authz, err = c.checkRollout(ctx, cv, workloads); err != nil || o.authz.refused != "" {
		return o, err
	}
	if o.world, err = c.observeWorld(ctx, cv, workloads, target); err != nil {
		return o, err
	}
	if o.world.Previous != nil && r.Digest != cv.Status.SuccessDigest {
		o.rollbackRefused, err = c.rollbackRefused(ctx, cv, workloads)
	}
	return o, err
}

// observeWorld builds the world of the selected workloads: their pods
// where health needs them, the blue-green Services and the CV's Jobs.
func (c *Controller) observeWorld(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, target rollout.Target) (rollout.World, error) {
	w := rollout.World{CV: cv, Target: target, Now: c.clock.Now(), Workloads: workloads, Pods: map[string][]*corev1.Pod{},
		Services: map[string]*corev1.Service{}, Jobs: map[string]*batchv1.Job{}, JobLogs: map[string]string{}}
	if prev, err := pinnedTarget(cv.Spec.ImageRepo, cv.Status.SuccessVersion, cv.Status.SuccessDigest); err == nil && cv.Status.SuccessDigest != "" {
		w.Previous = &prev
	}
	if err := c.observePods(ctx, &w, cv.Spec.Container.Name); err != nil {
		return w, err
	}
	if err := c.observeServices(ctx, &w, cv); err != nil {
		return w, err
	}
	return w, c.observeJobs(ctx, &w, cv)
}

// observePods lists the pods of the workloads whose health they decide:
// those already running the image under test (target, or previous while
// rolling back), with replicas wanted, and not yet done by their own status.
func (c *Controller) observePods(ctx context.Context, w *rollout.World, container string) error {
	for _, wl := range w.Workloads {
		image, _ := workload.ContainerImage(wl, container)
		if image != w.Target.Image && (w.Previous == nil || image != w.Previous.Image) || !workload.WantsPods(wl) {
			continue
		}
		if workload.Evaluate(wl, nil, container, image).Done {
			continue // its own status says every replica runs the image: pods tell nothing more
		}
		pods, err := c.workloads.PodsOf(ctx, wl)
		if err != nil {
			return err
		}
		w.Pods[wl.Key()] = pods
	}
	return nil
}

// observeServices reads the blue-green Services named by the spec.
func (c *Controller) observeServices(ctx context.Context, w *rollout.World, cv *cvv1.ContainerVersion) error {
	bg := cv.Spec.Strategy.BlueGreen
	if rollout.StrategyKind(cv) != cvv1.StrategyServiceBlueGreen || bg == nil {
		return nil
	}
	for _, name := range []string{bg.ServiceName, bg.VerificationServiceName} {
		if name == "" {
			continue
		}
		svc, err := c.kube.CoreV1().Services(cv.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		w.Services[name] = svc
	}
	return nil
}

// observeJobs reads the CV's Jobs from the cache and the log tail of the
// failed ones (a failed Job is read once: the rollout then ends).
func (c *Controller) observeJobs(ctx context.Context, w *rollout.World, cv *cvv1.ContainerVersion) error {
	jobs, err := c.jobs.Lister.Jobs(cv.Namespace).List(labels.SelectorFromSet(labels.Set{rollout.LabelCV: cv.Name}))
	if err != nil {
		return err
	}
	for _, job := range jobs {
		w.Jobs[job.Name] = job
		if jobHasFailed(job) {
			w.JobLogs[job.Name] = c.jobs.LogTail(ctx, job)
		}
	}
	return nil
}

// jobHasFailed reports a Job the Job controller gave up on.
func jobHasFailed(job *batchv1.Job) bool {
	for _, cond := range job.Status.Conditions {
		if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// checkRollout runs the author check of a rollout of the selected
// workloads (cached answers); a refusal is an answer, an error a failed
// review.
func (c *Controller) checkRollout(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (authzResult, error) {
	if c.authz == nil {
		return authzResult{}, nil
	}
	verdict, err := c.authz.Rollout(ctx, cv, workloads)
	return asAuthzResult(verdict, err)
}

func asAuthzResult(verdict authz.Verdict, err error) (authzResult, error) {
	if err == nil {
		return authzResult{checked: true, grandfathered: verdict.Grandfathered, message: verdict.Message()}, nil
	}
	refusal, ok := authz.AsRefusal(err)
	if !ok {
		return authzResult{}, err
	}
	return authzResult{checked: true, refused: refusal.Error()}, nil
}

// observeRest compares what the selected workloads run with the deployed
// digest (drift, late joiners), and, when that starts a restore, checks
// the digest's signature and the author's rights.
func (c *Controller) observeRest(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (*restObservation, error) {
	st := cv.Status
	if st.CurrStatus != cvv1.StatusSuccess || st.SuccessDigest == "" || st.CurrDigest != st.SuccessDigest ||
		rollout.StrategyKind(cv) != cvv1.StrategySimple {
		return nil, nil // nothing deployed, the last version failed, or blue-green's idle colour (not drift)
	}
	target, err := pinnedTarget(cv.Spec.ImageRepo, st.SuccessVersion, st.SuccessDigest)
	if err != nil {
		return nil, nil
	}
	found := mismatches(cv, workloads, target.Image)
	o := &restObservation{target: target, restoreImage: poller.ResolvedImage{Digest: st.SuccessDigest, Version: st.SuccessVersion}}
	for _, m := range found {
		if m.joined {
			o.joined = append(o.joined, m)
		} else {
			o.drifted = append(o.drifted, m)
		}
	}
	if cond := findCondition(st.Conditions, cvv1.ConditionDrifted); cond != nil && cond.Status == metav1.ConditionTrue {
		o.driftReported = true
	}
	o.wouldFight = len(o.drifted) > 0 && c.corrections.wouldFight(namespacedKey(cv), c.clock.Now())
	if len(o.drifted) > 0 {
		o.otherManager = otherManager(o.drifted[0].w)
	}
	if _, ok := restoreTrigger(cv, o); ok {
		o.startsRollout, o.needed = true, true
		return o, c.checkStart(ctx, cv, workloads, st.SuccessDigest, &o.signature, &o.authz)
	}
	o.needed = restChangesStatus(cv, o)
	return o, nil
}

// restChangesStatus reports whether planning the workloads' state would
// change the CV's status (a new drift report, a fight stopped, a drift
// cleared). A report already written changes nothing, so the sync goes on
// to the poll: a CV whose drift is only reported keeps polling.
func restChangesStatus(cv *cvv1.ContainerVersion, o *restObservation) bool {
	snap := &snapshot{cv: cv, rest: o}
	d := decision{cv: cv.DeepCopy()}
	planRest(snap, &d)
	return d.statusChanged(snap)
}

// acts reports whether the workloads need the sync's attention (a status
// change or a restore); otherwise the sync goes on to the poll.
func (o *restObservation) acts() bool { return o.needed }

// checkStart verifies a digest about to be rolled out to the selected
// workloads: its signature and the author's rights.
func (c *Controller) checkStart(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, digest string, sig *signatureVerdict, az *authzResult) error {
	var err error
	if *sig, err = c.checkSignature(ctx, cv, workloads, digest); err != nil {
		return err
	}
	*az, err = c.checkRollout(ctx, cv, workloads)
	return err
}

// observePoll polls the registry when the CV is due (its schedule, or a
// pending request), and judges a new digest: release gate, signature,
// author's rights, promotion. It returns nil when no poll was due.
func (c *Controller) observePoll(ctx context.Context, s *syncerState, snap *snapshot) (*pollObservation, error) {
	cv := snap.cv
	newest := newestRequest(snap.requests)
	if newest != nil && c.waitForRecheck(s, cv, recheckToken(newest)) {
		return nil, nil
	}
	if st := cv.Status; st.AvailableDigest != "" && released(cv, st.AvailableVersion, st.AvailableDigest) {
		s.force(history.TriggerRelease) // a held version was approved: act now, not at the next poll
	}
	if st := cv.Status; st.AvailableDigest != "" && st.HeldUntil != nil && !snap.now.Before(st.HeldUntil.Time) {
		s.force(history.TriggerPoll) // a version held by minAge is old enough now
	}
	if newest != nil {
		s.force(requestTrigger(snap.requests))
	}
	interval, _ := c.pollEvery(cv, snap.now)
	if due, wait := s.due(cv, interval, snap.now); !due {
		c.queue.AddAfter(s.key, wait)
		return nil, nil
	}
	o, err := c.pollRegistry(ctx, s, snap)
	if err == nil && o.err != nil && newest != nil {
		o.recheck = c.scheduleRecheck(s, cv, recheckToken(newest), "")
	}
	if err != nil || o.misconfigured != "" || o.refused != "" || o.err != nil {
		return o, err
	}
	if newest != nil && pushedDigest(newest) != "" && o.action != syncer.StartRollout {
		o.recheck = c.scheduleRecheck(s, cv, pushedDigest(newest), o.img.Digest)
	}
	if o.action == syncer.StartRollout {
		return o, c.judgeNewDigest(ctx, snap, o)
	}
	return o, nil
}

// pollRegistry asks the registry where the tag points, with the pull
// Secrets of the CV and its selected workloads.
func (c *Controller) pollRegistry(ctx context.Context, s *syncerState, snap *snapshot) (*pollObservation, error) {
	cv := snap.cv
	o := &pollObservation{}
	syntax, err := registry.CompileVersionSyntax(cv.Spec.VersionSyntax)
	if err != nil {
		o.misconfigured = err.Error()
		o.trigger = s.polled(c.clock.Now())
		return o, nil
	}
	maxAge := pollInterval(cv)
	forced := s.forcedBy() != ""
	if forced {
		maxAge = c.triggers.maxAge(s.key, c.clock.Now())
	}
	if az, err := c.checkPoll(ctx, cv, snap.workloads); err != nil || az.refused != "" {
		o.refused = az.refused
		o.trigger = s.polled(c.clock.Now())
		c.queue.AddAfter(s.key, s.interval)
		return o, err
	}
	start := c.clock.Now()
	o.img, o.err = c.resolve(ctx, cv, snap.workloads, syntax, maxAge, forced)
	now := c.clock.Now()
	c.metrics.PollDuration.Observe(now.Sub(start).Seconds())
	o.trigger = s.polled(now)
	if at, ok := budgetRetry(o.err, s.key, s.interval, now); ok {
		o.deferred, s.next = true, at
		c.queue.AddAfter(s.key, at.Sub(now))
		c.metrics.PollsTotal.WithLabelValues("deferred").Inc()
		return o, nil
	}
	c.queue.AddAfter(s.key, s.interval)
	if o.err != nil {
		c.metrics.PollsTotal.WithLabelValues("error").Inc()
		return o, nil
	}
	status := failureCleared(cv, snap.requests).Status // a request forgets the failure: the version is tried again
	o.action = syncer.Decide(&status, o.img.Digest)
	o.version = versionName(cv, o.img)
	result := "unchanged"
	if o.action == syncer.StartRollout {
		result = "changed"
		if !forced {
			c.wakeFollowers(cv, o.img.Digest)
		}
	}
	c.metrics.PollsTotal.WithLabelValues(result).Inc()
	return o, nil
}

// judgeStart runs a digest that may start a rollout through the CV's own
// rules, in order: the release gate, spec.policy.minAge (after asking for
// the provenance that carries the build time), the platform gate, then the
// signature and the author's rights. The poll (judgeNewDigest) and
// automatic promotion (judgePromotion) both use it. It reports whether
// every check ran: otherwise o.verdict says why the digest is held, or
// o.pending that a verdict is still being read.
func (c *Controller) judgeStart(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, o *pollObservation) (bool, error) {
	if o.verdict = c.gate(cv, o.version, o.img.Digest); !o.verdict.Allowed {
		return false, nil
	}
	c.requestProvenance(ctx, cv, workloads, o.img.Digest)
	if c.holdYoung(cv, o) || c.checkPlatforms(ctx, cv, workloads, o) {
		return false, nil
	}
	return true, c.checkStart(ctx, cv, workloads, o.img.Digest, &o.signature, &o.authz)
}

// judgeNewDigest reads the verdicts on a digest the poll found new.
func (c *Controller) judgeNewDigest(ctx context.Context, snap *snapshot, o *pollObservation) error {
	cv := snap.cv
	if o.trigger == history.TriggerPoll && cv.Status.CurrDigest != "" {
		c.noteMiss(cv) // a move, not a new CV's first rollout
	}
	if judged, err := c.judgeStart(ctx, cv, snap.workloads, o); !judged || err != nil {
		return err
	}
	if !requestedBy(snap.requests, history.TriggerPromote) {
		return nil // only `cvmanager promote` asks: other new digests read no history
	}
	if promotion, ok := c.promotionOf(ctx, cv, snap.workloads, o.img.Digest); ok {
		o.promotion = &promotion
	}
	return nil
}

// checkPoll checks that the CV's author may read every pull Secret
// cvmanager would use for it and its selected workloads, before the
// registry is asked.
func (c *Controller) checkPoll(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (authzResult, error) {
	if c.authz == nil {
		return authzResult{}, nil
	}
	verdict, err := c.authz.Secrets(ctx, cv, pullSecretNames(cv, workloads))
	az, err := asAuthzResult(verdict, err)
	if az.refused != "" {
		az.refused = fmt.Sprintf("not polling %s:%s: %s", cv.Spec.ImageRepo, cv.Spec.Tag, az.refused)
	}
	return az, err
}
