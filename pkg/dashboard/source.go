package dashboard

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// ListerSource reads from the controller's informer caches: a dashboard
// request costs no API call.
type ListerSource struct {
	CVs     cvlisters.ContainerVersionLister
	Listers workload.Listers
}

// ContainerVersions implements Source.
func (s ListerSource) ContainerVersions(namespace string) ([]*cvv1.ContainerVersion, error) {
	if namespace == "" {
		return s.CVs.List(labels.Everything())
	}
	return s.CVs.ContainerVersions(namespace).List(labels.Everything())
}

// Workloads implements Source.
func (s ListerSource) Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error) {
	return s.Listers.Select(namespace, selector)
}

// APISource reads through the API, for the CLI which has no caches.
type APISource struct {
	Ctx      context.Context
	Kube     kubernetes.Interface
	CVClient versioned.Interface
}

// ContainerVersions implements Source.
func (s APISource) ContainerVersions(namespace string) ([]*cvv1.ContainerVersion, error) {
	list, err := s.CVClient.CvmanagerV1alpha1().ContainerVersions(namespace).List(s.Ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*cvv1.ContainerVersion, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Workloads implements Source.
func (s APISource) Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error) {
	opts := metav1.ListOptions{LabelSelector: selector.String()}
	var out []workload.Workload
	deployments, err := s.Kube.AppsV1().Deployments(namespace).List(s.Ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range deployments.Items {
		out = append(out, workload.Workload{Kind: workload.Deployment, Object: &deployments.Items[i]})
	}
	statefulSets, err := s.Kube.AppsV1().StatefulSets(namespace).List(s.Ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range statefulSets.Items {
		out = append(out, workload.Workload{Kind: workload.StatefulSet, Object: &statefulSets.Items[i]})
	}
	daemonSets, err := s.Kube.AppsV1().DaemonSets(namespace).List(s.Ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range daemonSets.Items {
		out = append(out, workload.Workload{Kind: workload.DaemonSet, Object: &daemonSets.Items[i]})
	}
	cronJobs, err := s.Kube.BatchV1().CronJobs(namespace).List(s.Ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range cronJobs.Items {
		out = append(out, workload.Workload{Kind: workload.CronJob, Object: &cronJobs.Items[i]})
	}
	return out, nil
}

// ListerGetter adapts a CV lister to CVGetter.
type ListerGetter struct {
	Lister cvlisters.ContainerVersionLister
}

// Get implements CVGetter.
func (g ListerGetter) Get(namespace, name string) (*cvv1.ContainerVersion, error) {
	return g.Lister.ContainerVersions(namespace).Get(name)
}

// ForController builds the dashboard over a controller's caches.
func ForController(cvs cvlisters.ContainerVersionLister, workloads workload.Listers, kube kubernetes.Interface) *Handler {
	return NewHandler(ListerSource{CVs: cvs, Listers: workloads}, history.NewStore(kube), ListerGetter{Lister: cvs})
}
