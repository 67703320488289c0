package controller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	kubeinformers "k8s.io/client-go/informers"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/generated/informers/externalversions"
	cvinformers "cvmanager.dev/cvmanager/pkg/generated/informers/externalversions/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Informers are the caches the controller reads and watches. The caller
// owns the factories behind them: it starts them (on every replica, so a
// standby serves reads from warm caches) and shuts them down.
type Informers struct {
	// CVs is the ContainerVersion informer.
	CVs cvinformers.ContainerVersionInformer
	// Workloads gives Deployments, StatefulSets, DaemonSets and CronJobs,
	// slimmed (slimWorkload). It holds no Pods: they are listed while a
	// rollout needs them (workload.PodLister).
	Workloads kubeinformers.SharedInformerFactory
	// Jobs holds only the Jobs cvmanager created (verifications, migrations).
	Jobs batchinformers.JobInformer
	// Requests are the pending requests for the leader (trigger, webhook,
	// clear-failed); nil when nothing creates any (library use).
	Requests cvinformers.ContainerVersionRequestInformer
	// Nodes, slimmed to labels and taints, feed the platform gate; nil in
	// a namespaced install, which may not read nodes.
	Nodes coreinformers.NodeInformer
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
	// Requests watches ContainerVersionRequests: its own factory, since the
	// CV factory's selectors (labels, a CV's name) do not apply to them.
	Requests externalversions.SharedInformerFactory
	// Nodes watches nodes for the platform gate; nil unless WithNodes.
	Nodes kubeinformers.SharedInformerFactory
	// client lists pods while a rollout needs them (WorkloadListers).
	client kubernetes.Interface
}

// NewFactories builds the factories for scope. Cached objects keep only
// what decisions read (slimWorkload, slimMeta), so the caches do not grow
// with fields nobody reads.
func NewFactories(kube kubernetes.Interface, cvClient versioned.Interface, scope Scope) *Factories {
	strip := kubeinformers.WithTransform(slimWorkload)
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
		client: kube,
		Kube: kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0,
			kubeinformers.WithNamespace(scope.Namespace), strip),
		CVs: externalversions.NewSharedInformerFactoryWithOptions(cvClient, 0,
			externalversions.WithNamespace(scope.Namespace),
			externalversions.WithTweakListOptions(scopeCVs),
			externalversions.WithTransform(slimMeta)),
		// Only the Jobs cvmanager created (they carry the CV label), so the
		// cache does not hold every Job of the cluster.
		Jobs: kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0,
			kubeinformers.WithNamespace(scope.Namespace), kubeinformers.WithTransform(slimMeta),
			kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = rollout.LabelCV })),
		Requests: externalversions.NewSharedInformerFactoryWithOptions(cvClient, 0,
			externalversions.WithNamespace(scope.Namespace), externalversions.WithTransform(slimMeta)),
	}
}

// Informers returns the informers the controller needs from f.
func (f *Factories) Informers() Informers {
	inf := Informers{
		CVs:       f.CVs.Cvmanager().V1alpha1().ContainerVersions(),
		Workloads: f.Kube,
		Jobs:      f.Jobs.Batch().V1().Jobs(),
		Requests:  f.Requests.Cvmanager().V1alpha1().ContainerVersionRequests(),
	}
	if f.Nodes != nil {
		inf.Nodes = f.Nodes.Core().V1().Nodes()
	}
	return inf
}

// WorkloadListers reads the workloads of f's caches and lists pods from
// the apiserver (workload.LivePods).
func (f *Factories) WorkloadListers() workload.Listers {
	return workload.NewListers(f.Kube, workload.LivePods(f.client))
}

// Start starts every informer requested so far; call it after New.
func (f *Factories) Start(stop <-chan struct{}) {
	f.Kube.Start(stop)
	f.CVs.Start(stop)
	f.Jobs.Start(stop)
	f.Requests.Start(stop)
	if f.Nodes != nil {
		f.Nodes.Start(stop)
	}
}

// WithNodes adds the (cluster-scoped) node informer the platform gate
// reads; a namespaced install, which may not list nodes, goes without.
func (f *Factories) WithNodes() *Factories {
	f.Nodes = kubeinformers.NewSharedInformerFactoryWithOptions(f.client, 0, kubeinformers.WithTransform(slimNode))
	return f
}

// Shutdown stops the informers and waits for them.
func (f *Factories) Shutdown() {
	f.Kube.Shutdown()
	f.CVs.Shutdown()
	f.Jobs.Shutdown()
	f.Requests.Shutdown()
	if f.Nodes != nil {
		f.Nodes.Shutdown()
	}
}

// informerSynced lists the HasSynced of every informer in inf the
// controller uses.
func informerSynced(inf Informers) []cache.InformerSynced {
	apps, batch := inf.Workloads.Apps().V1(), inf.Workloads.Batch().V1()
	synced := []cache.InformerSynced{
		inf.CVs.Informer().HasSynced, inf.Jobs.Informer().HasSynced,
		apps.Deployments().Informer().HasSynced, apps.StatefulSets().Informer().HasSynced,
		apps.DaemonSets().Informer().HasSynced, batch.CronJobs().Informer().HasSynced,
	}
	if inf.Requests != nil {
		synced = append(synced, inf.Requests.Informer().HasSynced)
	}
	if inf.Nodes != nil {
		synced = append(synced, inf.Nodes.Informer().HasSynced)
	}
	return synced
}
