package workload

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// PodLister lists the pods of a namespace that match a selector.
//
// Why not an informer: a cluster-wide Pods informer holds every pod of the
// cluster, and pods are the most numerous objects there are, while
// cvmanager reads pods only to judge a rollout under way (stuck pods of the
// new image: ImagePullBackOff, CrashLoopBackOff, OOMKilled). A label-selected
// List while a rollout waits costs the apiserver one request per check and
// the controller no memory at rest, so its footprint does not grow with the
// cluster's pods. Dashboard pod counts come from workload status, not pods.
type PodLister interface {
	List(ctx context.Context, namespace string, selector labels.Selector) ([]*corev1.Pod, error)
}

// LivePods lists pods from the apiserver. ResourceVersion "0" lets the
// apiserver answer from its watch cache, not etcd: a health check can
// afford the few milliseconds of staleness, the next check sees the rest.
func LivePods(client kubernetes.Interface) PodLister { return livePods{client} }

type livePods struct{ client kubernetes.Interface }

func (l livePods) List(ctx context.Context, namespace string, selector labels.Selector) ([]*corev1.Pod, error) {
	list, err := l.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: selector.String(), ResourceVersion: "0",
	})
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Health judges w's rollout of container to image (Evaluate). It lists the
// workload's pods only when they can tell something its status cannot:
// once the template runs image and some replica is wanted. A workload not
// yet patched, a 0-replica one and a CronJob cost no request.
func (l Listers) Health(ctx context.Context, w Workload, container, image string) (Health, error) {
	var pods []*corev1.Pod
	if current, _ := ContainerImage(w, container); current == image && WantsPods(w) {
		var err error
		if pods, err = l.PodsOf(ctx, w); err != nil {
			return Health{}, err
		}
	}
	return Evaluate(w, pods, container, image), nil
}

// WantsPods reports whether w should have pods running now: only then do
// its pods tell something its status cannot.
func WantsPods(w Workload) bool {
	switch o := w.Object.(type) {
	case *appsv1.Deployment:
		return replicas(o.Spec.Replicas) > 0 || o.Status.Replicas > 0
	case *appsv1.StatefulSet:
		return replicas(o.Spec.Replicas) > 0 || o.Status.Replicas > 0
	case *appsv1.DaemonSet:
		return o.Status.DesiredNumberScheduled > 0 || o.Status.CurrentNumberScheduled > 0
	}
	return false
}
