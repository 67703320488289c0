package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	kubeinformers "k8s.io/client-go/informers"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/generated/informers/externalversions"
	cvinformers "cvmanager.dev/cvmanager/pkg/generated/informers/externalversions/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// Informers are the caches the controller reads and watches. The caller
// owns the factories behind them: it starts them (on every replica, so a
// standby serves reads from warm caches) and shuts them down.
type Informers struct {
	// CVs is the ContainerVersion informer.
	CVs cvinformers.ContainerVersionInformer
	// Workloads gives Deployments, StatefulSets, DaemonSets, CronJobs and Pods.
	Workloads kubeinformers.SharedInformerFactory
	// Jobs holds only the Jobs cvmanager created (verifications, migrations).
	Jobs batchinformers.JobInformer
}

// Scope narrows what the factories watch.
type Scope struct {
	// Namespace limits the watch to one namespace; "" watches all.
	Namespace string
	// CVSelector limits the CVs watched; nil means every CV.
	CVSelector labels.Selector
	// Name limits the CV watch to one CV (with Namespace): `cr sync`.
	Name string
}

// Factories are the shared informer factories the controller's Informers
// come from, built the one way `run`, `cr sync`, the demo and the tests use.
type Factories struct {
	Kube kubeinformers.SharedInformerFactory
	CVs  externalversions.SharedInformerFactory
	Jobs kubeinformers.SharedInformerFactory
}

// NewFactories builds the factories for scope. Cached objects keep no
// managed field sets: they are often the largest part of an object.
func NewFactories(kube kubernetes.Interface, cvClient versioned.Interface, scope Scope) *Factories {
	strip := kubeinformers.WithTransform(summarizeManagedFields)
	selector := scope.CVSelector
	if selector == nil {
		selector = labels.Everything()
	}
	scopeCVs := func(o *metav1.ListOptions) {
		o.LabelSelector = selector.String()
		if scope.Name != "" {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", scope.Name).String()
		}
	}
	return &Factories{
		Kube: kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0,
			kubeinformers.WithNamespace(scope.Namespace), strip),
		CVs: externalversions.NewSharedInformerFactoryWithOptions(cvClient, 0,
			externalversions.WithNamespace(scope.Namespace),
			externalversions.WithTweakListOptions(scopeCVs),
			externalversions.WithTransform(stripManagedFields)),
		// Only the Jobs cvmanager created (they carry the CV label), so the
		// cache does not hold every Job of the cluster.
		Jobs: kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0,
			kubeinformers.WithNamespace(scope.Namespace), kubeinformers.WithTransform(stripManagedFields),
			kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = rollout.LabelCV })),
	}
}

// Informers returns the informers the controller needs from f.
func (f *Factories) Informers() Informers {
	return Informers{
		CVs:       f.CVs.Cvmanager().V1alpha1().ContainerVersions(),
		Workloads: f.Kube,
		Jobs:      f.Jobs.Batch().V1().Jobs(),
	}
}

// Start starts every informer requested so far; call it after New.
func (f *Factories) Start(stop <-chan struct{}) {
	f.Kube.Start(stop)
	f.CVs.Start(stop)
	f.Jobs.Start(stop)
}

// Shutdown stops the informers and waits for them.
func (f *Factories) Shutdown() {
	f.Kube.Shutdown()
	f.CVs.Shutdown()
	f.Jobs.Shutdown()
}

// summarizeManagedFields keeps of a workload's managedFields who wrote it
// and when (manager, operation, subresource, time), which names the other
// writer in a drift fight, and drops the field sets, often the largest part
// of an object. Pods and Jobs keep nothing (see stripManagedFields).
func summarizeManagedFields(obj any) (any, error) {
	if _, ok := obj.(*corev1.Pod); ok {
		return stripManagedFields(obj)
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	entries := m.GetManagedFields()
	for i := range entries {
		entries[i].FieldsV1 = nil
	}
	m.SetManagedFields(entries)
	return obj, nil
}

// stripManagedFields drops metadata.managedFields from cached objects: the
// controller never reads them from the cache and they are often the largest
// part of an object, which matters with thousands of workloads and CVs.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// informerSynced lists the HasSynced of every informer in inf the
// controller uses.
func informerSynced(inf Informers) []cache.InformerSynced {
	apps, batch := inf.Workloads.Apps().V1(), inf.Workloads.Batch().V1()
	return []cache.InformerSynced{
		inf.CVs.Informer().HasSynced, inf.Jobs.Informer().HasSynced,
		apps.Deployments().Informer().HasSynced, apps.StatefulSets().Informer().HasSynced,
		apps.DaemonSets().Informer().HasSynced, batch.CronJobs().Informer().HasSynced,
		inf.Workloads.Core().V1().Pods().Informer().HasSynced,
	}
}
