package controller

import (
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
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

// note records a correction of key's workloads at now.
func (c *corrections) note(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string][]time.Time{}
	}
	c.at[key] = append(recentOf(c.at[key], now), now)
}

// wouldFight reports whether key's workloads were already corrected
// FightCorrections times within FightWindow: another correction would be a
// fight with another writer.
func (c *corrections) wouldFight(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(recentOf(c.at[key], now)) >= FightCorrections
}

func recentOf(times []time.Time, now time.Time) []time.Time {
	var recent []time.Time
	for _, t := range times {
		if now.Sub(t) < FightWindow {
			recent = append(recent, t)
		}
	}
	return recent
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
func mismatches(cv *cvv1.ContainerVersion, workloads []workload.Workload, image string) []mismatch {
	var out []mismatch
	for _, w := range workloads {
		running, found := workload.ContainerImage(w, cv.Spec.Container.Name)
		if !found || workload.SameImage(running, image) {
			continue
		}
		out = append(out, mismatch{w: w, running: running, joined: workload.WrittenImage(w, cv.Spec.Container.Name) == ""})
	}
	return out
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
