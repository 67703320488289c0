// Package controller runs cvmanager's reconcile loop: shared informers on
// ContainerVersions and workloads feed a rate-limited workqueue of
// namespace/name keys; each key's sync polls the registry when due (through
// the shared, deduplicating poller) and advances the CV's rollout.
//
// A per-CV "syncer" is the CV's schedule and poll state kept in memory; the
// queue's AddAfter is its timer, so 10,000 CVs cost 10,000 small structs and
// no goroutines of their own.
package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	cvscheme "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/scheme"
	"cvmanager.dev/cvmanager/pkg/generated/informers/externalversions"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Options configure a Controller.
type Options struct {
	// Namespace limits the controller to one namespace; "" watches all.
	Namespace string
	// CVSelector limits the controller to CVs with matching labels.
	CVSelector labels.Selector
	// Name limits the controller to one CV (with Namespace): `cr sync`.
	Name string
	// Workers is the number of concurrent syncs.
	Workers int
	// Resolver answers where a tag points (the registry layer's shared poller).
	Resolver syncer.ImageResolver
	// Clock is injected so tests can control time; nil means the real clock.
	Clock clock.Clock
	// Metrics receives the controller's series; nil creates a private registry.
	Metrics *metrics.Metrics
	// ProgressInterval is how often an unfinished rollout is re-examined even
	// without a workload event (a safety net; events usually come first).
	ProgressInterval time.Duration
	// Notifier delivers spec.notifications and DefaultNotifications; nil
	// disables both.
	Notifier *notify.Notifier
	// DefaultNotifications receive the events of every CV, besides the CV's
	// own receivers: a platform team's feed of all rollouts.
	DefaultNotifications []notify.Route
	// Restrictions are controller-wide version rules no CV can loosen.
	Restrictions []policy.Restriction
	// LastPolledEvery is the least time between two writes of a CV's
	// status.lastPolled after successful polls. 0, for the standalone syncer,
	// writes twice per spec.livenessSeconds, which `cr sync status` checks;
	// `cvmanager run` stretches it because those writes dominate its idle
	// cost at scale and its own health shows in /healthz and metrics.
	LastPolledEvery time.Duration
	// Authorization bounds what a CV makes the controller do by its
	// author's rights (pkg/authz). Nil checks nothing, as before: library
	// use and in-process tests; `cvmanager run` always sets it.
	Authorization *authz.Settings
	// DefaultHistory and DefaultRollback apply when a CV leaves them unset
	// (the original's --history and --rollback flags).
	DefaultHistory, DefaultRollback bool
}

// Controller reconciles ContainerVersions.
type Controller struct {
	opts      Options
	kube      kubernetes.Interface
	cvClient  versioned.Interface
	clock     clock.Clock
	metrics   *metrics.Metrics
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	history   *history.Store
	cvLister  cvlisters.ContainerVersionLister
	workloads workload.Listers
	secrets   *secretCache
	synced    []cache.InformerSynced

	kubeFactory kubeinformers.SharedInformerFactory
	cvFactory   externalversions.SharedInformerFactory
	jobFactory  kubeinformers.SharedInformerFactory
	jobs        *rollout.Jobs
	strategies  map[string]rollout.Strategy
	authz       *authz.Authorizer

	mu       sync.Mutex
	syncers  map[string]*syncerState
	triggers triggerTimes
}

// New wires informers, queue and event recorder. Call Run to start.
func New(kube kubernetes.Interface, cvClient versioned.Interface, opts Options) *Controller {
	opts = withDefaults(opts)
	c := &Controller{
		opts:     opts,
		kube:     kube,
		cvClient: cvClient,
		clock:    opts.Clock,
		metrics:  opts.Metrics,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "containerversions"}),
		history: history.NewStore(kube),
		secrets: newSecretCache(kube, opts.Clock),
		syncers: map[string]*syncerState{},
	}
	c.recorder = newRecorder(kube)
	c.setupInformers()
	c.setupJobs()
	c.setupAuthz() // issue 19 hook
	c.strategies = map[string]rollout.Strategy{
		cvv1.StrategySimple:           &rollout.Simple{Client: kube, Listers: c.workloads, Jobs: c.jobs},
		cvv1.StrategyServiceBlueGreen: &rollout.BlueGreen{Client: kube, Listers: c.workloads, Jobs: c.jobs},
	}
	return c
}

func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 2 * time.Second
	}
	if opts.CVSelector == nil {
		opts.CVSelector = labels.Everything()
	}
	return opts
}

func newRecorder(kube kubernetes.Interface) record.EventRecorder {
	utilruntime.Must(cvscheme.AddToScheme(scheme.Scheme))
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cvmanager"})
}

func (c *Controller) setupInformers() {
	strip := kubeinformers.WithTransform(stripManagedFields)
	c.kubeFactory = kubeinformers.NewSharedInformerFactoryWithOptions(c.kube, 0,
		kubeinformers.WithNamespace(c.opts.Namespace), strip)
	c.cvFactory = externalversions.NewSharedInformerFactoryWithOptions(c.cvClient, 0,
		externalversions.WithNamespace(c.opts.Namespace),
		externalversions.WithTweakListOptions(c.scopeCVs),
		externalversions.WithTransform(stripManagedFields))

	cvInformer := c.cvFactory.Cvmanager().V1alpha1().ContainerVersions()
	c.cvLister = cvInformer.Lister()
	_, _ = cvInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.enqueue,
	})
	_ = cvInformer.Informer().AddIndexers(cache.Indexers{rolloutSelectorIndex: rolloutSelectorKeys})

	apps, batch := c.kubeFactory.Apps().V1(), c.kubeFactory.Batch().V1()
	pods := c.kubeFactory.Core().V1().Pods()
	c.workloads = workload.NewListers(c.kubeFactory)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueOwnersOf,
		UpdateFunc: func(_, obj any) { c.enqueueOwnersOf(obj) },
	}
	c.synced = []cache.InformerSynced{cvInformer.Informer().HasSynced}
	for _, inf := range []cache.SharedIndexInformer{
		apps.Deployments().Informer(), apps.StatefulSets().Informer(),
		apps.DaemonSets().Informer(), batch.CronJobs().Informer(), pods.Informer(),
	} {
		_, _ = inf.AddEventHandler(handler)
		c.synced = append(c.synced, inf.HasSynced)
	}
}

// scopeCVs narrows the CV watch to the label selector and, for a standalone
// syncer, to one CV by name.
func (c *Controller) scopeCVs(o *metav1.ListOptions) {
	o.LabelSelector = c.opts.CVSelector.String()
	if c.opts.Name != "" {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.opts.Name).String()
	}
}

// enqueue adds a CV's key.
func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// enqueueOwnersOf wakes the CVs whose rollout waits on a changed workload or
// pod, so progress is noticed at once rather than at the next safety tick.
//
// It runs for every Pod and workload event in the cluster, so it must not
// cost O(CVs): the rolloutSelectorIndex narrows the candidates to CVs with a
// rollout under way whose selector could match one of the object's labels,
// and only those selectors are parsed and matched.
func (c *Controller) enqueueOwnersOf(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	set := labels.Set(m.GetLabels())
	for _, cv := range c.rolloutCandidates(m.GetNamespace(), set) {
		if cv.Status.Rollout == nil || cv.Spec.Selector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector); err == nil && sel.Matches(set) {
			c.queue.Add(namespacedKey(cv))
		}
	}
}

// rolloutSelectorIndex indexes the CVs with a rollout under way by
// namespace and one label pair their selector requires (see
// rolloutSelectorKeys). In steady state it is empty, so a workload event
// costs a few map lookups however many CVs exist.
const rolloutSelectorIndex = "rolloutSelector"

// rolloutSelectorKeys indexes a CV with a rollout under way under
// "<ns>/<key>=<value>" for the smallest key of its matchLabels (an object
// the selector matches must carry that pair), or under "<ns>/*" when the
// selector has only matchExpressions (a candidate for every object).
func rolloutSelectorKeys(obj any) ([]string, error) {
	cv, ok := obj.(*cvv1.ContainerVersion)
	if !ok || cv.Status.Rollout == nil || cv.Spec.Selector == nil {
		return nil, nil
	}
	first := ""
	for k := range cv.Spec.Selector.MatchLabels {
		if first == "" || k < first {
			first = k
		}
	}
	if first == "" {
		return []string{cv.Namespace + "/*"}, nil
	}
	return []string{cv.Namespace + "/" + first + "=" + cv.Spec.Selector.MatchLabels[first]}, nil
}

// rolloutCandidates returns the CVs of namespace with a rollout under way
// whose selector may match set: the index buckets of set's label pairs and
// the match-expressions bucket. Without the index (never expected) it falls
// back to every CV of the namespace.
func (c *Controller) rolloutCandidates(namespace string, set labels.Set) []*cvv1.ContainerVersion {
	indexer := c.cvFactory.Cvmanager().V1alpha1().ContainerVersions().Informer().GetIndexer()
	var out []*cvv1.ContainerVersion
	add := func(key string) error {
		objs, err := indexer.ByIndex(rolloutSelectorIndex, key)
		for _, o := range objs {
			if cv, ok := o.(*cvv1.ContainerVersion); ok {
				out = append(out, cv)
			}
		}
		return err
	}
	if err := add(namespace + "/*"); err != nil {
		cvs, _ := c.cvLister.ContainerVersions(namespace).List(labels.Everything())
		return cvs
	}
	for k, v := range set {
		_ = add(namespace + "/" + k + "=" + v)
	}
	return out
}

// Run starts the informers, waits for their caches and runs the workers
// until ctx is done. It returns after the workers have stopped.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.kubeFactory.Start(ctx.Done())
	c.cvFactory.Start(ctx.Done())
	c.jobFactory.Start(ctx.Done())
	defer c.kubeFactory.Shutdown()
	defer c.cvFactory.Shutdown()
	defer c.jobFactory.Shutdown()

	klog.InfoS("Waiting for informer caches", "namespace", c.opts.Namespace)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("informer caches did not sync: %w", ctx.Err())
	}
	klog.InfoS("Starting workers", "workers", c.opts.Workers)
	var wg sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, c.runWorker, time.Second)
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// HasSynced reports whether the informer caches are filled (for /readyz).
func (c *Controller) HasSynced() bool {
	for _, synced := range c.synced {
		if !synced() {
			return false
		}
	}
	return true
}

func (c *Controller) runWorker(ctx context.Context) {
	for c.processNextItem(ctx) {
	}
}

func (c *Controller) processNextItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Sync failed; will retry", "key", key)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// TriggerPoll schedules an immediate poll of a CV that bypasses the shared
// poller's cache: only a registry answer fetched after the trigger arrived
// serves it (see triggerTimes). It is how push triggers and registry
// webhooks beat the poll interval.
func (c *Controller) TriggerPoll(namespace, name, trigger string) {
	key := namespace + "/" + name
	c.triggers.note(key, c.clock.Now())
	c.syncerFor(key).force(trigger)
	c.queue.Add(key)
}

// stripManagedFields drops metadata.managedFields from cached objects: the
// controller never reads them and they are often the largest part of an
// object, which matters with thousands of workloads and CVs in the cache.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// CVLister exposes the CV cache, so the dashboard reads without API calls.
func (c *Controller) CVLister() cvlisters.ContainerVersionLister { return c.cvLister }

// WorkloadListers exposes the workload caches for the same reason.
func (c *Controller) WorkloadListers() workload.Listers { return c.workloads }

// KubeClient is the client the controller writes with.
func (c *Controller) KubeClient() kubernetes.Interface { return c.kube }

// ClearFailed forgets the failed digest of a CV so its version is tried
// again (the manual override after fixing what made it fail), then polls.
func (c *Controller) ClearFailed(ctx context.Context, namespace, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cv, err := c.cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cv.Status.FailedDigest == "" {
			return nil
		}
		cv.Status.FailedDigest = ""
		_, err = c.cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).UpdateStatus(ctx, cv, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	c.TriggerPoll(namespace, name, "clear-failed")
	return nil
}
