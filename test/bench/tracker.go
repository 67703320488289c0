package main

import (
	"context"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/generated/informers/externalversions"
)

// tracker watches Deployments and CVs from the bench's side and stamps the
// moment each expected change lands: a Deployment patched to a digest, a CV
// reporting the rollout finished. Watch delivery adds a few milliseconds,
// which the latencies include (they are upper bounds).
type tracker struct {
	deploys cache.SharedIndexInformer
	cvs     cache.SharedIndexInformer

	mu           sync.Mutex
	byDeploy     map[string]*expectation
	byCV         map[string]*expectation
	imageChanges int64
	deployEvents int64 // every Deployment update, the control plane's own included
}

// expectation is one CV expected to roll out digest.
type expectation struct {
	digest  string
	patched time.Time
	// rolled is when the kube-controller-manager had observed the patched
	// template (status.observedGeneration caught up): the control plane's
	// share of a rollout, between cvmanager's patch and its finish.
	rolled   time.Time
	finished time.Time
	// trigger is what the controller says started the rollout
	// (status.rollout.trigger: poll, trigger, webhook, ...), "" if the
	// watch never saw the rollout in progress.
	trigger string
	// cvWrites counts the CV's new resourceVersions the watch delivered
	// from the expectation to the rollout's finish, that one included:
	// the writes of this CV that landed, with no other CV's background in
	// them. A write refused with 409 is not seen, and a watch that had to
	// relist would skip versions, so it can only undercount that way.
	cvWrites int
}

func startTracker(ctx context.Context, kube kubernetes.Interface, cvs versioned.Interface) *tracker {
	t := &tracker{byDeploy: map[string]*expectation{}, byCV: map[string]*expectation{}}
	strip := kubeinformers.WithTransform(func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return obj, nil
	})
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, strip)
	cf := externalversions.NewSharedInformerFactory(cvs, 0)
	t.deploys = kf.Apps().V1().Deployments().Informer()
	t.cvs = cf.Cvmanager().V1alpha1().ContainerVersions().Informer()
	_, _ = t.deploys.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: t.deploymentChanged})
	_, _ = t.cvs.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: t.cvChanged})
	kf.Start(ctx.Done())
	cf.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), t.deploys.HasSynced, t.cvs.HasSynced)
	return t
}

func (t *tracker) deploymentChanged(oldObj, newObj any) {
	now := time.Now()
	d, ok := newObj.(*appsv1.Deployment)
	old, ok2 := oldObj.(*appsv1.Deployment)
	if !ok || !ok2 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deployEvents++
	image, oldImage := firstImage(d), firstImage(old)
	x := t.byDeploy[d.Namespace+"/"+d.Name]
	if x != nil && !x.patched.IsZero() && x.rolled.IsZero() && strings.HasSuffix(image, "@"+x.digest) &&
		d.Status.ObservedGeneration >= d.Generation {
		x.rolled = now
	}
	if image == oldImage {
		return
	}
	t.imageChanges++
	if x != nil && x.patched.IsZero() && strings.HasSuffix(image, "@"+x.digest) {
		x.patched = now
	}
}

func (t *tracker) cvChanged(oldObj, obj any) {
	now := time.Now()
	cv, ok := obj.(*cvv1.ContainerVersion)
	old, ok2 := oldObj.(*cvv1.ContainerVersion)
	if !ok || !ok2 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	x := t.byCV[cv.Namespace+"/"+cv.Name]
	if x != nil && x.finished.IsZero() && cv.ResourceVersion != old.ResourceVersion {
		x.cvWrites++
	}
	if ro := cv.Status.Rollout; x != nil && x.trigger == "" && ro != nil && ro.Digest == x.digest {
		x.trigger = ro.Trigger
	}
	if x != nil && x.finished.IsZero() && cv.Status.Rollout == nil &&
		cv.Status.CurrStatus == cvv1.StatusSuccess && cv.Status.CurrDigest == x.digest {
		x.finished = now
	}
}

func firstImage(d *appsv1.Deployment) string {
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		return cs[0].Image
	}
	return ""
}

// expect registers CV i's rollout of digest and returns its record.
func (t *tracker) expect(ns, deploy, cv, digest string) *expectation {
	x := &expectation{digest: digest}
	t.mu.Lock()
	t.byDeploy[ns+"/"+deploy] = x
	t.byCV[ns+"/"+cv] = x
	t.mu.Unlock()
	return x
}

// writesOf is how many writes of x's CV landed until its rollout finished.
func (t *tracker) writesOf(x *expectation) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return x.cvWrites
}

// times reads an expectation under the lock.
func (t *tracker) times(x *expectation) (patched, finished time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return x.patched, x.finished
}

// rolledAt is when the control plane had observed x's patched template.
func (t *tracker) rolledAt(x *expectation) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return x.rolled
}

// triggerOf is what started x's rollout, as the controller reported it.
func (t *tracker) triggerOf(x *expectation) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return x.trigger
}

// changes is the number of Deployment image changes seen so far.
func (t *tracker) changes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.imageChanges
}

// events is the number of Deployment updates seen so far.
func (t *tracker) events() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.deployEvents
}

// backlog counts Deployments the kube-controller-manager has not observed
// yet (observedGeneration < generation): work queued on the control plane,
// not on cvmanager.
func (t *tracker) backlog() int {
	n := 0
	for _, obj := range t.deploys.GetStore().List() {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Status.ObservedGeneration < d.Generation {
			n++
		}
	}
	return n
}

// allDone reports whether every expectation has both stamps (or just the
// patch when finished is false).
func (t *tracker) allDone(xs []*expectation, finished bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range xs {
		if x.patched.IsZero() || (finished && x.finished.IsZero()) {
			return false
		}
	}
	return true
}

// unfinished counts the latest expectation of each CV whose rollout has
// not been reported finished.
func (t *tracker) unfinished() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, x := range t.byCV {
		if x.finished.IsZero() {
			n++
		}
	}
	return n
}

// idle reports whether every rollout expected so far has finished.
func (t *tracker) idle() bool { return t.unfinished() == 0 }
