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
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/pkg/writeback"
)

// Options configure a Controller.
type Options struct {
	// Namespace is the namespace the informers watch ("" for all), for logs.
	Namespace string
	// Workers is the number of concurrent syncs.
	Workers int
	// Resolver answers where a tag points (the registry layer's shared poller).
	Resolver poller.ImageResolver
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
	// PushFirst, when set, polls refs that verified webhooks cover only at
	// a safety interval (see PushFirst); nil polls every ref normally.
	PushFirst *PushFirst
	// Signatures verify images before they are deployed
	// (spec.policy.verify, --require-signatures).
	Signatures SignatureOptions
	// Provenance reads the provenance of each new digest once, in the
	// background (pkg/provenance); nil reads none.
	Provenance *provenance.Cache
	// Fleet reads promotion sources in other clusters, through the
	// kubeconfig Secrets Kubeconfigs reads (spec.promotion.from,
	// pkg/fleet); nil for either leaves spec.promotion.from unread.
	Fleet       *fleet.Observer
	Kubeconfigs *fleet.KubeconfigSecrets
	// WriteBack writes what passed into git (spec.writeBack, pkg/writeback);
	// nil writes nothing. Its report function must call ReportWriteBack.
	WriteBack *writeback.Writer
	// Platforms reads each new digest's index once, for the platform gate
	// (pkg/platform); nil, or no node informer, checks nothing.
	Platforms *platform.Cache
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
	cvIndexer cache.Indexer
	workloads workload.Listers
	secrets   *secretCache
	synced    []cache.InformerSynced

	jobs      *rollout.Jobs
	lifecycle *rollout.Lifecycle
	planners  rollout.Planners
	executor  *rollout.Executor
	authz     *authz.Authorizer

	nodes          nodeLister
	writeBacks     writeBackResults
	expected       patchExpectations
	echoes         statusEchoes
	requestIndexer cache.Indexer
	handled        handledRequests
	local          localRequests
	leading        func() bool
	sent           sentEffects

	mu          sync.Mutex
	syncers     map[string]*syncerState
	triggers    triggerTimes
	announced   announcedDigests
	pushes      pushRefs
	corrections corrections

	// liveSettings, when set by UpdateSettings, replace the defaults of
	// opts (see settings).
	liveSettings atomic.Pointer[Settings]
}

// New wires the controller to its informers (which the caller starts, after
// New, and stops), its event recorder and its clock. Call Run to work.
func New(kube kubernetes.Interface, cvClient versioned.Interface, inf Informers,
	recorder record.EventRecorder, clk clock.Clock, opts Options) *Controller {
	opts = withDefaults(opts)
	c := &Controller{
		opts:     opts,
		kube:     kube,
		cvClient: cvClient,
		clock:    clk,
		metrics:  opts.Metrics,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "containerversions"}),
		recorder: recorder,
		history:  history.NewStore(kube),
		secrets:  newSecretCache(kube, clk),
		syncers:  map[string]*syncerState{},
		synced:   informerSynced(inf),
	}
	c.watch(inf)
	c.jobs = &rollout.Jobs{Client: kube, Lister: inf.Jobs.Lister(), Resolve: c.resolveVerifier}
	c.lifecycle = &rollout.Lifecycle{Jobs: c.jobs}
	c.planners = rollout.NewPlanners(c.jobs)
	c.executor = &rollout.Executor{Client: kube, Jobs: c.jobs}
	c.setupAuthz(c.jobs)
	return c
}

func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 2 * time.Second
	}
	return opts
}

// watch registers the controller's event handlers and indexes.
func (c *Controller) watch(inf Informers) {
	cvInformer := inf.CVs.Informer()
	c.cvLister = inf.CVs.Lister()
	c.cvIndexer = cvInformer.GetIndexer()
	_, _ = cvInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.enqueue,
	})
	_ = cvInformer.AddIndexers(cache.Indexers{rolloutSelectorIndex: rolloutSelectorKeys, selectorIndex: selectorKeys,
		followedIndex: followedKeys})
	if inf.Requests != nil {
		c.watchRequests(inf.Requests.Informer())
	}
	if inf.Nodes != nil {
		c.nodes = inf.Nodes.Lister()
	}

	apps, batch := inf.Workloads.Apps().V1(), inf.Workloads.Batch().V1()
	// No Pods informer: pods are listed while a rollout needs them, and a
	// rollout under way is re-examined every ProgressInterval besides on
	// workload events, which is when a stuck pod is seen.
	c.workloads = workload.NewListers(inf.Workloads, workload.LivePods(c.kube))
	// Workload events also wake the CVs at rest that select the workload
	// when what they compare changed (labels, images, annotations): that is
	// how drift and late joiners are seen, without a registry request.
	workloads := cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueOwnersOf(obj); c.enqueueSelecting(obj) },
		UpdateFunc: func(old, obj any) {
			c.enqueueOwnersOf(obj)
			if workloadChanged(old, obj) {
				c.enqueueSelecting(obj)
			}
		},
	}
	for _, i := range []cache.SharedIndexInformer{
		apps.Deployments().Informer(), apps.StatefulSets().Informer(),
		apps.DaemonSets().Informer(), batch.CronJobs().Informer(),
	} {
		_, _ = i.AddEventHandler(workloads)
	}
	_, _ = inf.Jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueJobOwner,
		UpdateFunc: func(_, obj any) { c.enqueueJobOwner(obj) },
	})
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

// enqueueOwnersOf wakes the CVs whose rollout waits on a changed workload,
// so progress is noticed at once rather than at the next safety tick.
//
// It runs for every workload event in the watched namespaces, so it must not
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
	return selectorKey(cv), nil
}

// selectorKey is "<ns>/<key>=<value>" for the smallest key of the CV's
// matchLabels, or "<ns>/*" when it has only matchExpressions.
func selectorKey(cv *cvv1.ContainerVersion) []string {
	first := ""
	for k := range cv.Spec.Selector.MatchLabels {
		if first == "" || k < first {
			first = k
		}
	}
	if first == "" {
		return []string{cv.Namespace + "/*"}
	}
	return []string{cv.Namespace + "/" + first + "=" + cv.Spec.Selector.MatchLabels[first]}
}

// rolloutCandidates returns the CVs of namespace with a rollout under way
// whose selector may match set.
func (c *Controller) rolloutCandidates(namespace string, set labels.Set) []*cvv1.ContainerVersion {
	return c.candidates(rolloutSelectorIndex, namespace, set)
}

// candidates returns the CVs of namespace in index whose selector may match
// set: the index buckets of set's label pairs and the match-expressions
// bucket. Without the index (never expected) it falls back to every CV of
// the namespace.
func (c *Controller) candidates(index, namespace string, set labels.Set) []*cvv1.ContainerVersion {
	var out []*cvv1.ContainerVersion
	add := func(key string) error {
		objs, err := c.cvIndexer.ByIndex(index, key)
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

// Run waits for the informer caches (which the caller started) and runs
// the workers until ctx is done. It returns after the workers have stopped.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()

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
	c.handOver()
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
