package controller

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// apply runs a decision: the workload actions, the history record and the
// config key, then the one status write, carrying the resourceVersion the
// snapshot was read at as its precondition. A conflict returns an error,
// so the key is retried from the fresh cache; nothing is guessed around it.
// Events, notifications and metrics follow the successful write only.
func (c *Controller) apply(ctx context.Context, snap *snapshot, d decision) error {
	if len(d.actions) > 0 {
		outcome, err := c.runActions(ctx, d.cv, d.actions)
		if err != nil {
			return err
		}
		if outcome != nil {
			// An action's result decides the rollout (a Job that cannot be
			// built or is refused): plan again with it, nothing more was written.
			d = replan(snap, *outcome)
		}
	}
	if err := c.writeRecords(ctx, snap, d); err != nil {
		return err
	}
	var written *cvv1.ContainerVersion
	if d.statusChanged(snap) {
		var err error
		if written, err = c.writeStatus(ctx, d.cv); err != nil {
			return err
		}
		c.echoes.wrote(namespacedKey(written), snap.cv.ResourceVersion, written.ResourceVersion, c.clock.Now())
	}
	c.afterWrite(ctx, snap, d)
	if written != nil && written.Status.Rollout != nil && snap.cv.Status.Rollout == nil {
		return c.firstStep(ctx, written, snap.workloads)
	}
	return nil
}

// firstStep takes a rollout's first step right after the status write that
// made its intent durable, planned from the object that write returned
// (fresher than the cache, which has not seen the write yet). The intent
// is in the API before any workload is touched, as always; the step just
// does not wait for the informer's echo of the write, which halves the
// syncs a burst of rollouts queues (measured: a 1,000-CV burst ran 2,015
// syncs before every workload was patched). The step runs only when it
// needs no status write of its own; otherwise the echo's sync takes it.
// It keeps the workloads its sync selected: a status write changes no
// selector.
func (c *Controller) firstStep(ctx context.Context, written *cvv1.ContainerVersion, workloads []workload.Workload) error {
	key := namespacedKey(written)
	snap, err := c.observeSelected(ctx, c.syncerFor(key), written, workloads)
	if err != nil {
		return err
	}
	d := plan(snap)
	if d.statusChanged(snap) || d.record != nil || d.historyWriteBack != nil || len(d.effects) > 0 {
		c.queue.Add(key)
		return nil
	}
	if len(d.actions) > 0 {
		outcome, err := c.runActions(ctx, d.cv, d.actions)
		if err != nil || outcome != nil {
			c.queue.Add(key) // the next sync plans with the fresh world
			return err
		}
	}
	if d.requeue > 0 {
		c.queue.AddAfter(key, d.requeue)
	}
	return nil
}

// runActions applies a plan's actions, but for image patches already made
// that the cache has not shown yet (patchExpectations).
func (c *Controller) runActions(ctx context.Context, cv *cvv1.ContainerVersion, actions []rollout.Action) (*rollout.Progress, error) {
	now := c.clock.Now()
	todo := c.expected.pending(actions, now)
	if len(todo) == 0 {
		return nil, nil
	}
	outcome, err := c.executor.Apply(ctx, cv, todo)
	if err == nil {
		c.expected.made(todo, now)
	}
	return outcome, err
}

// replan decides a rollout again once an action reported its outcome,
// ending like every plan (a rollback it finishes is written back).
func replan(snap *snapshot, p rollout.Progress) decision {
	d := decision{cv: snap.cv.DeepCopy(), consumed: servesRequests(snap)}
	judge(snap, &d, rollout.Plan{Progress: p})
	planAfterTransition(snap, &d)
	return d
}

// writeRecords appends the history record (or records a write-back outcome
// in the records of its rollout) and keeps spec.config's key on the
// deployed version, before the status write that makes them final. All are
// idempotent: a replayed sync finds its own record and value.
func (c *Controller) writeRecords(ctx context.Context, snap *snapshot, d decision) error {
	if rec := d.record; rec != nil && snap.historyOn {
		if err := c.appendHistory(ctx, d.cv, snap.workloads, rec); err != nil {
			return err
		}
	}
	if wb := d.historyWriteBack; wb != nil && snap.historyOn {
		if err := c.recordWriteBackInHistory(ctx, d.cv, snap.workloads, *wb); err != nil {
			return err
		}
	}
	if d.configVersion != "" {
		return c.syncConfigKey(ctx, d.cv, d.configVersion)
	}
	return nil
}

// writeStatus writes cv's status through the status subresource. cv
// carries the resourceVersion its sync read: when the CV changed since,
// the write fails with a conflict and the sync is retried.
func (c *Controller) writeStatus(ctx context.Context, cv *cvv1.ContainerVersion) (*cvv1.ContainerVersion, error) {
	cv.Status.ObservedGeneration = cv.Generation
	written, err := c.cvClient.CvmanagerV1alpha1().ContainerVersions(cv.Namespace).UpdateStatus(ctx, cv, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("writing the status of %s: %w", namespacedKey(cv), err)
	}
	return written, nil
}

// afterWrite runs what follows a durable decision: the consumed requests
// are deleted, Events, notifications and metrics go out (each once per
// rollout ID), and the CV is looked at again when the plan asked.
func (c *Controller) afterWrite(ctx context.Context, snap *snapshot, d decision) {
	key := namespacedKey(snap.cv)
	if d.consumed {
		if announcedByPush(snap.requests) {
			c.notePush(snap.cv)
		}
		c.consumeRequests(ctx, snap.requests)
	}
	c.consumeRequests(ctx, snap.spent) // done already: deleted with no effect
	if d.corrected {
		c.corrections.note(key, snap.now)
	}
	if d.cv.Status.WriteBack != nil {
		c.writeBacks.recorded(key, d.cv.Status.WriteBack)
	}
	id := rolloutIDOf(snap.cv, d.cv)
	for _, e := range d.effects {
		c.emit(ctx, d.cv, id, e)
	}
	if d.requeue > 0 {
		c.queue.AddAfter(key, d.requeue)
	}
}

// rolloutIDOf is the ID of the rollout a decision concerns: the one under
// way before or after it.
func rolloutIDOf(before, after *cvv1.ContainerVersion) string {
	if r := after.Status.Rollout; r != nil {
		return r.ID
	}
	if r := before.Status.Rollout; r != nil {
		return r.ID
	}
	return ""
}

// emit sends one effect. Effects of a rollout are keyed by its ID, so a
// sync replayed after its status write (a lagging cache) sends none twice.
func (c *Controller) emit(ctx context.Context, cv *cvv1.ContainerVersion, id string, e effect) {
	if id != "" && !c.sent.first(namespacedKey(cv), id, e.reason+"|"+e.notify+"|"+e.log+"|"+writeBackKey(e)) {
		return
	}
	switch {
	case e.reason != "":
		c.recorder.Event(cv, e.eventType, e.reason, e.message)
	case e.notify != "":
		c.notify(ctx, cv, id, e.notify, e.version, e.digest, e.from, e.text)
	case e.rolloutDone != nil:
		c.recordRolloutMetrics(e.outcome, e.rolloutDone, c.clock.Now())
	case e.authzRefused:
		c.metrics.AuthzRefusals.Inc()
	case e.writeBack != nil:
		c.sendWriteBack(ctx, cv, e.writeBack)
	}
	if e.log != "" {
		c.logTransition(cv, e)
	}
}

// logTransition logs a rollout transition with the keys every rollout
// line carries: cv, rollout ID, version and digest.
func (c *Controller) logTransition(cv *cvv1.ContainerVersion, e effect) {
	r := cv.Status.Rollout
	if e.rolloutDone != nil {
		r = e.rolloutDone
	}
	if r == nil {
		if e.detail != "" {
			klog.InfoS(e.log, "cv", klog.KObj(cv), "err", e.detail)
			return
		}
		klog.InfoS(e.log, "cv", klog.KObj(cv))
		return
	}
	klog.InfoS(e.log, "cv", klog.KObj(cv), "rolloutID", r.ID, "version", r.Version, "digest", r.Digest, "trigger", r.Trigger)
}

// sentEffects remembers, per CV, the effects sent for its last
// sentRollouts rollouts: a replayed sync's effects meet their keys and are
// dropped.
//
// Why per CV: a rollout sends about six keyed effects (two Events, a
// notification, the metrics, log lines, a write-back), so a burst of 1,000
// rollouts makes about 6,000 keys and one of 10,000 CVs about 60,000. One
// set for the whole controller, capped at 4,096 keys, forgot a burst's
// first effects while the burst was still running, when its syncs could
// still be replayed. Per CV, what is kept grows with the number of CVs,
// never more than the keys of a CV's last two rollouts, and no burst of
// other CVs evicts a CV's current rollout. A deleted CV's entry goes with
// it (forget).
type sentEffects struct {
	mu   sync.Mutex
	byCV map[string]*cvEffects
}

// sentRollouts is how many rollouts of a CV keep their keys: the one under
// way or just finished, and the one before it, for a replay from a cache
// that lags by a whole rollout (its status write fails anyway).
const sentRollouts = 2

// cvEffects are the keys sent for a CV's last rollouts, newest first,
// kept as 64-bit hashes: a CV's dozen keys cannot collide in practice, and
// a hash takes 8 bytes where the key string takes several dozen.
type cvEffects struct {
	ids  [sentRollouts]string
	keys [sentRollouts][]uint64
}

// first reports whether the effect key of rollout id of the CV cvKey is
// new, remembering it.
func (s *sentEffects) first(cvKey, id, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byCV == nil {
		s.byCV = map[string]*cvEffects{}
	}
	e := s.byCV[cvKey]
	if e == nil {
		e = &cvEffects{}
		s.byCV[cvKey] = e
	}
	i := slices.Index(e.ids[:], id)
	if i < 0 {
		copy(e.ids[1:], e.ids[:])
		copy(e.keys[1:], e.keys[:])
		e.ids[0], e.keys[0], i = id, nil, 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	sum := h.Sum64()
	if slices.Contains(e.keys[i], sum) {
		return false
	}
	e.keys[i] = append(e.keys[i], sum)
	return true
}

// forget drops what was sent for a deleted CV.
func (s *sentEffects) forget(cvKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byCV, cvKey)
}

// writeBackKey tells write-back effects apart in the sent set.
func writeBackKey(e effect) string {
	if e.writeBack == nil {
		return ""
	}
	return "writeback:" + e.writeBack.rolloutID
}
