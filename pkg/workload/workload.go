// Package workload is a uniform view over the workload kinds cvmanager rolls
// out: Deployments, StatefulSets, DaemonSets and CronJobs. It finds the
// named container, patches its image and judges rollout health from the
// workload's own status and pods. It knows nothing of ContainerVersions,
// registries or workqueues.
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kind names a workload kind.
type Kind string

// The kinds cvmanager rolls out.
const (
	Deployment  Kind = "Deployment"
	StatefulSet Kind = "StatefulSet"
	DaemonSet   Kind = "DaemonSet"
	CronJob     Kind = "CronJob"
)

// Workload is one workload object, deep-copied so it is safe to keep.
type Workload struct {
	Kind   Kind
	Object metav1.Object
}

// Name of the workload.
func (w Workload) Name() string { return w.Object.GetName() }

// Namespace of the workload.
func (w Workload) Namespace() string { return w.Object.GetNamespace() }

// Key is "Kind/name", used in messages, history and the dashboard.
func (w Workload) Key() string { return string(w.Kind) + "/" + w.Name() }

// PodTemplate is the pod template the workload's pods are made from.
func (w Workload) PodTemplate() *corev1.PodTemplateSpec {
	switch o := w.Object.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template
	}
	return &corev1.PodTemplateSpec{}
}

// Listers read workloads from shared informer caches, so a sync costs no
// API calls, and pods from the apiserver while a rollout needs them (see
// PodLister). The workload caches carry LabelIndex (NewListers).
type Listers struct {
	Deployments, StatefulSets, DaemonSets, CronJobs cache.Indexer
	Pods                                            PodLister
}

// Select returns every workload of the four kinds in namespace matching
// selector, sorted by kind then name.
func (l Listers) Select(namespace string, selector labels.Selector) ([]Workload, error) {
	var out []Workload
	for _, k := range []struct {
		kind    Kind
		indexer cache.Indexer
	}{{Deployment, l.Deployments}, {StatefulSet, l.StatefulSets}, {DaemonSet, l.DaemonSets}, {CronJob, l.CronJobs}} {
		objs, err := selectFrom(k.indexer, namespace, selector)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if obj, ok := o.(runtime.Object); ok {
				out = append(out, Workload{k.kind, obj.DeepCopyObject().(metav1.Object)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}

// PodsOf returns the pods selected by the workload's own selector. CronJobs
// have none worth judging: their Jobs run on a schedule.
func (l Listers) PodsOf(ctx context.Context, w Workload) ([]*corev1.Pod, error) {
	var sel *metav1.LabelSelector
	switch o := w.Object.(type) {
	case *appsv1.Deployment:
		sel = o.Spec.Selector
	case *appsv1.StatefulSet:
		sel = o.Spec.Selector
	case *appsv1.DaemonSet:
		sel = o.Spec.Selector
	default:
		return nil, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	if l.Pods == nil {
		return nil, nil
	}
	return l.Pods.List(ctx, w.Namespace(), selector)
}

// ContainerImage returns the image of the named container, looking at init
// containers only when no regular container has the name.
func ContainerImage(w Workload, container string) (string, bool) {
	spec := &w.PodTemplate().Spec
	for _, c := range spec.Containers {
		if c.Name == container {
			return c.Image, true
		}
	}
	for _, c := range spec.InitContainers {
		if c.Name == container {
			return c.Image, true
		}
	}
	return "", false
}

// PatchImage sets the container's image with a strategic merge patch keyed
// by container name. It does nothing when the image is already set, which
// is what lets a restarted controller resume without patching twice.
func PatchImage(ctx context.Context, client kubernetes.Interface, w Workload, container, image string) (bool, error) {
	current, found := ContainerImage(w, container)
	if !found {
		return false, fmt.Errorf("%s has no container %q", w.Key(), container)
	}
	if current == image {
		return false, nil
	}
	patch, err := imagePatch(w, container, image)
	if err != nil {
		return false, err
	}
	opts := metav1.PatchOptions{FieldManager: "cvmanager"}
	ns, name := w.Namespace(), w.Name()
	switch w.Kind {
	case Deployment:
		_, err = client.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	case StatefulSet:
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	case DaemonSet:
		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	case CronJob:
		_, err = client.BatchV1().CronJobs(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	default:
		err = fmt.Errorf("unsupported workload kind %s", w.Kind)
	}
	return err == nil, err
}

// AnnotationImagePrefix prefixes the annotation, one per container, in
// which the controller notes on the workload the image it last wrote there
// (image.cvmanager.dev/<container>). A workload whose image differs from the
// deployed one is "drifted" when it carries the note (someone changed what
// cvmanager wrote) and a "joiner" when it does not (it never ran an image
// cvmanager wrote: created or labelled after the last rollout).
const AnnotationImagePrefix = "image.cvmanager.dev/"

// WrittenImage is the image the controller last wrote into container of w,
// or "" when it never did.
func WrittenImage(w Workload, container string) string {
	return w.Object.GetAnnotations()[AnnotationImagePrefix+container]
}

// imagePatch builds {"metadata":{"annotations":{…}},"spec":{"template":{"spec":{"containers":[{"name":…,"image":…}]}}}}
// (nested under jobTemplate for CronJobs; initContainers when that is where
// the container lives).
func imagePatch(w Workload, container, image string) ([]byte, error) {
	list := "containers"
	for _, c := range w.PodTemplate().Spec.InitContainers {
		if c.Name == container {
			list = "initContainers"
		}
	}
	for _, c := range w.PodTemplate().Spec.Containers {
		if c.Name == container {
			list = "containers"
		}
	}
	podSpec := map[string]any{list: []map[string]string{{"name": container, "image": image}}}
	template := map[string]any{"template": map[string]any{"spec": podSpec}}
	if w.Kind == CronJob {
		template = map[string]any{"jobTemplate": map[string]any{"spec": template}}
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{AnnotationImagePrefix + container: image}},
		"spec":     template,
	})
}
