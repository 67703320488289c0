package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Drift and late joiners are found from the workload informers: a sync of a
// CV at rest compares the image each selected workload runs with the
// deployed digest. It costs cache reads, never a registry request.
const (
	ReasonDriftDetected  = "DriftDetected"
	ReasonDriftRestored  = "DriftRestored"
	ReasonDriftFight     = "DriftFight"
	ReasonWorkloadJoined = "WorkloadJoined"
	ReasonNoDrift        = "NoDrift"
)

// Fight detection: more corrections of one CV's workloads than
// FightCorrections within FightWindow means another writer keeps
// reverting them (a GitOps tool with an older manifest, a script): the
// controller stops correcting and says who the other writer is.
const (
	FightCorrections = 3
	FightWindow      = 10 * time.Minute
)

// fieldManager is the name cvmanager writes workloads under.
const fieldManager = "cvmanager"

// mismatch is one selected workload that does not run the deployed image.
type mismatch struct {
	w       workload.Workload
	running string
	// joined: cvmanager never wrote this workload's image (it was created
	// or labelled after the last rollout); otherwise someone changed it.
	joined bool
}

func (m mismatch) String() string { return m.w.Key() + " runs " + m.running }

// corrections remembers, per CV, when drift was last corrected. It lives
// in memory: a new leader starts counting afresh, which at worst allows
// FightCorrections more corrections before it stops.
type corrections struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// note records a correction at now and reports whether the CV had already
// been corrected FightCorrections times within FightWindow (a fight).
func (c *corrections) note(key string, now time.Time) (fight bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string][]time.Time{}
	}
	var recent []time.Time
	for _, t := range c.at[key] {
		if now.Sub(t) < FightWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= FightCorrections {
		c.at[key] = recent
		return true
	}
	c.at[key] = append(recent, now)
	return false
}

// driftPolicy is spec.driftPolicy with its default, Restore: a CV promises
// that its workloads run the deployed digest, so the controller keeps that
// promise unless told to only report (see docs/drift.md).
func driftPolicy(cv *cvv1.ContainerVersion) string {
	if cv.Spec.DriftPolicy == "" {
		return cvv1.DriftRestore
	}
	return cv.Spec.DriftPolicy
}

// mismatches lists the selected workloads whose container does not run
// image. Workloads without the container are not the CV's business here.
func (c *Controller) mismatches(cv *cvv1.ContainerVersion, image string) ([]mismatch, error) {
	sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil, nil
	}
	workloads, err := c.workloads.Select(cv.Namespace, sel)
	if err != nil {
		return nil, err
	}
	var out []mismatch
	for _, w := range workloads {
		running, found := workload.ContainerImage(w, cv.Spec.Container.Name)
		if !found || running == image {
			continue
		}
		out = append(out, mismatch{w: w, running: running, joined: workload.WrittenImage(w, cv.Spec.Container.Name) == ""})
	}
	return out, nil
}

// reconcileWorkloads brings a CV at rest back to its promise: joiners are
// rolled out to the deployed digest (trigger join), drifted workloads are
// restored (trigger drift) or reported, per spec.driftPolicy. It reports
// whether it acted (wrote status or started a rollout); the sync then ends
// and the status write's echo continues it.
func (c *Controller) reconcileWorkloads(ctx context.Context, cached *cvv1.ContainerVersion) (bool, error) {
	st := cached.Status
	if st.CurrStatus != cvv1.StatusSuccess || st.SuccessDigest == "" || st.CurrDigest != st.SuccessDigest {
		return false, nil // nothing deployed yet, or the last version failed without rollback
	}
	if rollout.StrategyKind(cached) != cvv1.StrategySimple {
		// Blue-green keeps the idle colour on the previous version on
		// purpose: a difference there is not drift (see docs/drift.md).
		return false, nil
	}
	target, err := pinnedTarget(cached.Spec.ImageRepo, st.SuccessVersion, st.SuccessDigest)
	if err != nil {
		return false, nil
	}
	found, err := c.mismatches(cached, target.Image)
	if err != nil {
		return false, err
	}
	var joined, drifted []mismatch
	for _, m := range found {
		if m.joined {
			joined = append(joined, m)
		} else {
			drifted = append(drifted, m)
		}
	}
	cv := cached.DeepCopy()
	if len(drifted) > 0 && (driftPolicy(cv) == cvv1.DriftReport || fighting(cv)) {
		return c.reportDrift(ctx, cv, drifted, target.Image)
	}
	if len(drifted) == 0 && len(joined) == 0 {
		return c.clearDrift(ctx, cv)
	}
	img := poller.ResolvedImage{Digest: st.SuccessDigest, Version: st.SuccessVersion}
	if len(drifted) > 0 {
		if c.corrections.note(namespacedKey(cv), c.clock.Now()) {
			return c.stopFight(ctx, cv, drifted, target.Image)
		}
		c.recorder.Eventf(cv, corev1.EventTypeWarning, ReasonDriftDetected, "%s, not the deployed %s: restoring",
			joinMismatches(drifted), target.Image)
		klog.InfoS("Drift detected; restoring", "cv", klog.KObj(cv), "workloads", joinMismatches(drifted))
		return true, c.startRollout(ctx, cv, img, history.TriggerDrift)
	}
	c.recorder.Eventf(cv, corev1.EventTypeNormal, ReasonWorkloadJoined, "%s joined the selector: rolling out %s",
		joinMismatches(joined), target.Image)
	return true, c.startRollout(ctx, cv, img, history.TriggerJoin)
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
func (c *Controller) reportDrift(ctx context.Context, cv *cvv1.ContainerVersion, drifted []mismatch, image string) (bool, error) {
	reason := ReasonDriftDetected
	message := fmt.Sprintf("%s, not the deployed %s (driftPolicy %s)", joinMismatches(drifted), image, driftPolicy(cv))
	if fighting(cv) {
		cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted)
		reason, message = cond.Reason, cond.Message
	}
	if cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted); cond != nil &&
		cond.Status == metav1.ConditionTrue && cond.Reason == reason && cond.Message == message {
		return false, nil
	}
	setCondition(cv, cvv1.ConditionDrifted, metav1.ConditionTrue, reason, message, c.clock.Now())
	if err := c.updateStatus(ctx, cv); err != nil {
		return false, err
	}
	c.recorder.Event(cv, corev1.EventTypeWarning, reason, message)
	return true, nil
}

// stopFight stops correcting a CV whose workloads another writer keeps
// reverting, and names that writer.
func (c *Controller) stopFight(ctx context.Context, cv *cvv1.ContainerVersion, drifted []mismatch, image string) (bool, error) {
	other := otherManager(drifted[0].w)
	message := fmt.Sprintf("stopped restoring after %d corrections in %s: %s, not the deployed %s; "+
		"field manager %q keeps changing it (make it stop, or set spec.driftPolicy: Report)",
		FightCorrections, FightWindow, joinMismatches(drifted), image, other)
	setCondition(cv, cvv1.ConditionDrifted, metav1.ConditionTrue, ReasonDriftFight, message, c.clock.Now())
	if err := c.updateStatus(ctx, cv); err != nil {
		return false, err
	}
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonDriftFight, message)
	klog.InfoS("Drift fight; stopped restoring", "cv", klog.KObj(cv), "otherManager", other)
	return true, nil
}

// clearDrift sets Drifted=False once every workload runs the deployed image.
func (c *Controller) clearDrift(ctx context.Context, cv *cvv1.ContainerVersion) (bool, error) {
	cond := findCondition(cv.Status.Conditions, cvv1.ConditionDrifted)
	if cond == nil || cond.Status == metav1.ConditionFalse {
		return false, nil
	}
	setCondition(cv, cvv1.ConditionDrifted, metav1.ConditionFalse, ReasonNoDrift, "every workload runs the deployed image", c.clock.Now())
	return true, c.updateStatus(ctx, cv)
}

// otherManager is the newest field manager of w other than cvmanager, from
// the managedFields summary the informer keeps (see summarizeManagedFields).
func otherManager(w workload.Workload) string {
	entries := w.Object.GetManagedFields()
	sort.SliceStable(entries, func(i, j int) bool {
		return timeOf(entries[i]).After(timeOf(entries[j]))
	})
	for _, e := range entries {
		if e.Manager != fieldManager && e.Subresource == "" {
			return e.Manager
		}
	}
	return "unknown"
}

func timeOf(e metav1.ManagedFieldsEntry) time.Time {
	if e.Time == nil {
		return time.Time{}
	}
	return e.Time.Time
}

func joinMismatches(ms []mismatch) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ", ")
}

// selectorIndex indexes every CV by namespace and one label pair its
// selector requires, like rolloutSelectorIndex, for workload events.
const selectorIndex = "selector"

func selectorKeys(obj any) ([]string, error) {
	cv, ok := obj.(*cvv1.ContainerVersion)
	if !ok || cv.Spec.Selector == nil {
		return nil, nil
	}
	return selectorKey(cv), nil
}

// enqueueSelecting wakes every CV whose selector matches a workload.
func (c *Controller) enqueueSelecting(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	set := labels.Set(m.GetLabels())
	for _, cv := range c.candidates(selectorIndex, m.GetNamespace(), set) {
		if sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(set) {
			c.queue.Add(namespacedKey(cv))
		}
	}
}

// workloadChanged reports a change that can make a workload drift, join
// or leave: labels, annotations or the pod template's images. Status
// updates, the bulk of workload events, do not.
func workloadChanged(old, obj any) bool {
	a, okA := workloadOf(old)
	b, okB := workloadOf(obj)
	if !okA || !okB {
		return true
	}
	if !equality.Semantic.DeepEqual(a.Object.GetLabels(), b.Object.GetLabels()) ||
		!equality.Semantic.DeepEqual(a.Object.GetAnnotations(), b.Object.GetAnnotations()) {
		return true
	}
	return !equality.Semantic.DeepEqual(images(a), images(b))
}

func images(w workload.Workload) []string {
	var out []string
	spec := w.PodTemplate().Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		out = append(out, c.Name+"="+c.Image)
	}
	return out
}

// workloadOf wraps an informer object as a Workload.
func workloadOf(obj any) (workload.Workload, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return workload.Workload{Kind: workload.Deployment, Object: o}, true
	case *appsv1.StatefulSet:
		return workload.Workload{Kind: workload.StatefulSet, Object: o}, true
	case *appsv1.DaemonSet:
		return workload.Workload{Kind: workload.DaemonSet, Object: o}, true
	case *batchv1.CronJob:
		return workload.Workload{Kind: workload.CronJob, Object: o}, true
	}
	return workload.Workload{}, false
}
