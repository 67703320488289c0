package controller

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/writeback"
)

// Git write-back (spec.writeBack, pkg/writeback) plugs into the sync as a
// plan rule and an effect: once a rollout has finished Success (verified,
// healthy, past its Jobs), or a rollback has restored the previous digest,
// the status write that records it also records the write-back as Pending,
// and the write is submitted after it. The writer reports the outcome from
// its own goroutine; the outcome waits in memory until the CV's next sync
// writes it into status.writeBack. A failed rollout writes nothing, so git
// never records an image that did not pass.
//
// The history record learns the commit the same way. The finish appends
// the rollout's record with writeBack Pending, keyed by the rollout ID the
// write carries (the commit does not exist yet, and the record must not
// wait for git: a write may fail for days). The sync that records the
// writer's outcome in status also puts it into that record
// (decision.historyWriteBack), before its status write like every history
// write: one read and at most one write per history ConfigMap, only when
// the record changes, so a replayed sync writes nothing twice. A failed
// write's retries rewrite the record only when the reason changes, and a
// status write that conflicts leaves the outcome in memory for the retry.
const (
	// ConditionWriteBack is True once the running version is in git, False
	// when the last write failed (its reason names the repository).
	ConditionWriteBack = "WriteBack"
	// Event reasons of write-back.
	ReasonWrittenBack     = "WrittenBack"
	ReasonWriteBackFailed = "WriteBackFailed"
)

// writeBackSubmit is the effect that hands a write to the writer.
type writeBackSubmit struct {
	rolloutID  string
	rolledBack bool
	from       string
}

// ReportWriteBack takes a writer's outcome for the CV key (the writer's
// report callback): it is written into status by the CV's next sync.
func (c *Controller) ReportWriteBack(key string, st cvv1.WriteBackStatus) {
	c.writeBacks.put(key, st)
	c.queue.Add(key)
}

// planWriteBack is the write-back rule, run after the sync's other rules on
// the status they decided: record an outcome the writer reported, and
// submit what passed (or was restored) and git does not hold yet.
func planWriteBack(snap *snapshot, d *decision) {
	cv := d.cv
	if cv.Spec.WriteBack == nil || cv.Status.Rollout != nil {
		return
	}
	if r := snap.writeBackResult; r != nil {
		if awaited(cv.Status.WriteBack, r) {
			recordWriteBack(snap, d, r)
		} else {
			recordSuperseded(d, r)
		}
	}
	if d.rolledBack != "" {
		submitWriteBack(snap, d, writeBackSubmit{rolloutID: d.rolledBack, rolledBack: true})
		return
	}
	due, wait := writeback.Due(cv, snap.now, 0)
	switch {
	case due:
		submitWriteBack(snap, d, writeBackSubmit{rolloutID: finishedSuccessID(snap, d), from: fromVersionOf(snap)})
	case wait > 0 && (d.requeue == 0 || wait < d.requeue):
		d.requeue = wait
	}
}

// awaited reports whether the reported outcome is of the write status says
// is pending (a result for an older, superseded write is dropped).
func awaited(st, r *cvv1.WriteBackStatus) bool {
	return st != nil && st.State == cvv1.WriteBackPending && st.RolloutID == r.RolloutID && st.Digest == r.Digest
}

// recordSuperseded puts the outcome of a write that a newer one replaced
// in status (a later rollout finished before git answered) into the
// history record of its own rollout only: status speaks of the newer
// write, but the older record must not stay Pending for ever.
func recordSuperseded(d *decision, r *cvv1.WriteBackStatus) {
	if r.RolloutID == "" || r.State == cvv1.WriteBackPending {
		return
	}
	d.historyWriteBack = historyWriteBackOf(r)
}

// historyWriteBackOf is what a history record keeps of a write's outcome.
func historyWriteBackOf(r *cvv1.WriteBackStatus) *history.WriteBack {
	return &history.WriteBack{RolloutID: r.RolloutID, State: r.State, Commit: r.Commit, URL: r.PullRequestURL, Reason: r.Reason}
}

// recordWriteBack writes an outcome into status, the WriteBack condition
// and an Event.
func recordWriteBack(snap *snapshot, d *decision, r *cvv1.WriteBackStatus) {
	d.cv.Status.WriteBack = r.DeepCopy()
	if r.RolloutID != "" {
		d.historyWriteBack = historyWriteBackOf(r)
	}
	repo := d.cv.Spec.WriteBack.URL
	if repo == "" {
		repo = "the repository of ConfigMap " + writeback.DefaultsConfigMap
	}
	if r.State == cvv1.WriteBackWritten {
		where := r.Commit
		if r.PullRequestURL != "" {
			where = r.PullRequestURL
		}
		msg := fmt.Sprintf("%s (%s) recorded in %s: %s", r.Version, r.Digest, repo, where)
		setCondition(d.cv, ConditionWriteBack, metav1.ConditionTrue, cvv1.WriteBackWritten, msg, snap.now)
		d.effects = append(d.effects, normal(ReasonWrittenBack, msg))
		return
	}
	msg := fmt.Sprintf("writing %s (%s) to %s failed (attempt %d, retried with backoff; the rollout stands): %s",
		r.Version, r.Digest, repo, r.Attempts, r.Reason)
	setCondition(d.cv, ConditionWriteBack, metav1.ConditionFalse, cvv1.WriteBackFailed, msg, snap.now)
	d.effects = append(d.effects, warning(ReasonWriteBackFailed, msg))
}

// submitWriteBack records the write as Pending and submits it after the
// status write.
func submitWriteBack(snap *snapshot, d *decision, s writeBackSubmit) {
	req := writeback.NewRequest(d.cv, s.rolloutID, writeback.Credentials{})
	pending := writeback.Pending(req, snap.now, req.Attempts)
	d.cv.Status.WriteBack = &pending
	if d.record != nil && s.rolloutID != "" {
		// The finish's own record: it names the write, and learns its
		// outcome from recordWriteBack.
		d.record.writeBack = &history.WriteBack{RolloutID: req.RolloutID, State: cvv1.WriteBackPending}
	}
	d.effects = append(d.effects, effect{writeBack: &writeBackSubmit{rolloutID: req.RolloutID, rolledBack: s.rolledBack, from: s.from}})
}

// finishedSuccessID is the ID of the rollout this sync finished with
// Success, "" for a resubmission.
func finishedSuccessID(snap *snapshot, d *decision) string {
	if r := snap.cv.Status.Rollout; r != nil && d.cv.Status.Rollout == nil && d.cv.Status.SuccessDigest == r.Digest {
		return r.ID
	}
	return ""
}

func fromVersionOf(snap *snapshot) string {
	if r := snap.cv.Status.Rollout; r != nil {
		return r.FromVersion
	}
	return ""
}

// sendWriteBack resolves the repository (the CV's, or the namespace's
// defaults), reads the credentials within the author's rights, and submits
// the write. A failure of either is reported like a failed write: status,
// condition, Event, and a retry with backoff, which also picks up a fixed
// defaults ConfigMap.
func (c *Controller) sendWriteBack(ctx context.Context, cv *cvv1.ContainerVersion, s *writeBackSubmit) {
	if c.opts.WriteBack == nil {
		return
	}
	key := namespacedKey(cv)
	spec, err := c.writeBackSpec(ctx, cv)
	var creds writeback.Credentials
	if err == nil {
		creds, err = c.writeBackCredentials(ctx, cv, spec)
	}
	req := writeback.NewRequest(cv, s.rolloutID, creds)
	req.Spec = spec
	req.RolledBack, req.FromVersion = s.rolledBack, s.from
	if err != nil {
		failed := writeback.Pending(req, c.clock.Now(), req.Attempts+1)
		failed.State, failed.Reason = cvv1.WriteBackFailed, err.Error()
		c.ReportWriteBack(key, failed)
		return
	}
	c.opts.WriteBack.Submit(req)
}

// writeBackSpec is the CV's spec.writeBack with the namespace's defaults
// applied (writeback.Effective). The defaults ConfigMap is read only for
// a CV that names no repository, once per write.
func (c *Controller) writeBackSpec(ctx context.Context, cv *cvv1.ContainerVersion) (cvv1.WriteBackSpec, error) {
	spec := *cv.Spec.WriteBack.DeepCopy()
	if spec.URL != "" {
		return spec, nil
	}
	cm, err := c.kube.CoreV1().ConfigMaps(cv.Namespace).Get(ctx, writeback.DefaultsConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return writeback.Effective(spec, nil)
	case err != nil:
		return spec, fmt.Errorf("reading ConfigMap %s: %v", writeback.DefaultsConfigMap, reasonOnly(err))
	}
	value, ok := cm.Data[writeback.DefaultsKey]
	if !ok {
		return writeback.Effective(spec, nil)
	}
	defaults, err := writeback.ParseDefaults(value)
	if err != nil {
		return spec, err
	}
	return writeback.Effective(spec, &defaults)
}

// writeBackCredentials reads the git credentials Secret spec names, which
// the CV's author must be allowed to read.
func (c *Controller) writeBackCredentials(ctx context.Context, cv *cvv1.ContainerVersion, spec cvv1.WriteBackSpec) (writeback.Credentials, error) {
	ref := spec.SecretRef
	if ref == nil {
		return writeback.Credentials{}, nil
	}
	if len(c.readableSecrets(ctx, cv, []string{ref.Name})) == 0 {
		return writeback.Credentials{}, fmt.Errorf("%s: the CV's author may not read Secret %s holding its git credentials", spec.URL, ref.Name)
	}
	secret, err := c.kube.CoreV1().Secrets(cv.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return writeback.Credentials{}, fmt.Errorf("%s: reading Secret %s: %v", spec.URL, ref.Name, reasonOnly(err))
	}
	return writeback.CredentialsFromSecret(ref, secret.Data)
}

// reasonOnly keeps an API error's reason, never a Secret's content.
func reasonOnly(err error) string {
	if reason := apierrors.ReasonForError(err); reason != metav1.StatusReasonUnknown {
		return string(reason)
	}
	return "read failed"
}

// writeBackResults are outcomes reported by the writer, per CV key, until
// a status write records them.
type writeBackResults struct {
	mu sync.Mutex
	by map[string]cvv1.WriteBackStatus
}

func (w *writeBackResults) put(key string, st cvv1.WriteBackStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.by == nil {
		w.by = map[string]cvv1.WriteBackStatus{}
	}
	w.by[key] = st
}

func (w *writeBackResults) get(key string) *cvv1.WriteBackStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.by[key]
	if !ok {
		return nil
	}
	return &st
}

// recorded forgets key's outcome once status holds it (or a newer write
// superseded it).
func (w *writeBackResults) recorded(key string, written *cvv1.WriteBackStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.by[key]
	if ok && written != nil && (equality.Semantic.DeepEqual(&st, written) || written.RolloutID != st.RolloutID || written.Digest != st.Digest) {
		delete(w.by, key)
	}
}
