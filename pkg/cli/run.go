package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/kubeclient"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/multins"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/pkg/trigger"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/pkg/writeback"
)

// DefaultTriggerRate is --trigger-rate's default: trigger API calls (and,
// separately, webhook deliveries that move a followed tag) per second.
const DefaultTriggerRate = 10

// runOptions are the flags of `cvmanager run`. Names follow the original
// cvmanager where it had one (--port, --history, --rollback, --k8s-config).
type runOptions struct {
	namespaces      []string
	authz           authzFlags
	cvSelector      string
	workers         int
	bindAddress     string
	port            int
	history         bool
	rollback        bool
	kubeQPS         float32
	kubeBurst       int
	leaderElect     bool
	leaseNamespace  string
	leaseName       string
	leaseDuration   time.Duration
	renewDeadline   time.Duration
	retryPeriod     time.Duration
	progressEvery   time.Duration
	lastPolledEvery time.Duration
	triggerKeysDir  string
	triggerRate     float64
	restrictions    []string
	webhookSecret   string
	webhookSafety   time.Duration
	webhookTrust    time.Duration
	registry        RegistryFlags
	enablePprof     bool
	provenance      bool
	releasePages    bool
	stateExport     stateExportFlags
	tls             server.TLSFiles
	readAuth        bool
	notify          notifyFlags
	signatures      signatureFlags
	fleet           fleetPeerFlags
	configMapKey    string
	logging         loggingFlags
	// flagChanged says whether a flag was given on the command line.
	flagChanged func(name string) bool
}

func newRunCommand(kube *KubeFlags) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the controller: watch ContainerVersions and roll workloads out",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.flagChanged = func(name string) bool { return cmd.Flags().Changed(name) }
			if err := o.logging.apply(cmd.ErrOrStderr()); err != nil {
				return err
			}
			return o.run(cmd.Context(), kube)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.namespaces, "namespace", nil,
		"watch only these namespaces, comma-separated (default: all namespaces); with RBAC granted only there (the chart's watchNamespaces)")
	f.StringVar(&o.cvSelector, "cv-selector", "", "manage only ContainerVersions with these labels (label selector)")
	// 8, not 4: a sync mostly waits on API round trips, so more in flight
	// cut the median of 20 back-to-back triggers from 173 to 133-145 ms in
	// the push path's bench (docs/http.md).
	f.IntVar(&o.workers, "concurrent-syncs", 8, "ContainerVersions synced in parallel")
	f.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address of the HTTP server (use 0.0.0.0 in a pod)")
	f.IntVar(&o.port, "port", 8081, "port of the HTTP server (metrics, probes, dashboard)")
	f.BoolVar(&o.history, "history", false, "record history for every CV, even without spec.history.enabled")
	f.BoolVar(&o.rollback, "rollback", false, "roll back failed rollouts for every CV, even without spec.rollback.enabled")
	f.Float32Var(&o.kubeQPS, "kube-api-qps", 50, "sustained queries per second to the Kubernetes API")
	f.IntVar(&o.kubeBurst, "kube-api-burst", 100, "burst of queries to the Kubernetes API")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader with a Lease so only one replica acts")
	f.StringVar(&o.leaseNamespace, "leader-elect-namespace", "",
		"namespace of the leader Lease (default: $POD_NAMESPACE in a pod, else the kubeconfig context's namespace)")
	f.StringVar(&o.leaseName, "leader-elect-name", "cvmanager", "name of the leader Lease")
	// The trade-offs are in docs/replicas.md: the lease duration bounds a
	// takeover after a crash; the retry period bounds a handover after
	// SIGTERM (the leader releases the Lease) and sets how often the leader
	// writes the Lease.
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"how long a lease lasts without renewal: after a crash (kill -9) a standby takes over within this plus one retry period")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"how long the leader retries renewing before it gives up leading (less than the lease duration)")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 500*time.Millisecond,
		"how often standbys try to take the lease and the leader renews it: on SIGTERM the leader releases the lease and a standby takes it within 1-2.2 retry periods; each renewal is one Lease write")
	f.DurationVar(&o.progressEvery, "progress-interval", 2*time.Second, "re-examine unfinished rollouts at least this often")
	f.DurationVar(&o.lastPolledEvery, "last-polled-interval", 15*time.Minute,
		"least time between writes of a CV's status.lastPolled (0: twice per spec.livenessSeconds, as a standalone `cr sync` does)")
	f.StringVar(&o.triggerKeysDir, "trigger-keys-dir", "", "directory of API keys (a mounted Secret) enabling POST /v1/trigger")
	f.Float64Var(&o.triggerRate, "trigger-rate", DefaultTriggerRate, "requests per second accepted by the trigger API (all keys together) and, separately, by the registry webhooks")
	f.StringVar(&o.webhookSecret, "webhook-secret-file", "", "file holding the shared secret that enables /v1/webhooks/{dockerhub,distribution,ecr,github,gitlab,harbor,quay,acr,artifactregistry}")
	f.DurationVar(&o.webhookSafety, "webhook-safety-interval", 0,
		"with webhooks enabled, refs a verified push covered recently are polled only this often (0: 10x the CV's pollIntervalSeconds; negative: poll every ref normally)")
	f.DurationVar(&o.webhookTrust, "webhook-trust-window", controller.DefaultTrustWindow,
		"how long one verified push keeps its ref on the safety interval; with no newer push the ref is polled normally again")
	f.StringArrayVar(&o.restrictions, "policy-version-restriction", nil,
		"<namespace-regex>=<version-regex>: versions deployed in matching namespaces must match (repeatable; CVs cannot loosen it)")
	f.BoolVar(&o.provenance, "image-provenance", true,
		"read each new digest's OCI annotations and labels (revision, source, created, authors, url, CI link) once, in the background, "+
			"for status, history, the dashboard and notifications: 2 GETs per new image (3 for an index); Docker Hub counts manifest GETs as pulls")
	f.BoolVar(&o.releasePages, "release-startup-pages", true,
		"after the package inits, and again once the caches are synced and startup has settled, hand the binary's pages back to the kernel "+
			"(MADV_PAGEOUT, then MADV_RANDOM): the ones the controller still runs are read back, a page at a time (docs/operations.md, Footprint)")
	f.BoolVar(&o.enablePprof, "enable-pprof", false, "serve Go profiles at /debug/pprof/ on the HTTP port (for performance work; off by default)")
	f.StringVar(&o.tls.CertFile, "tls-cert-file", "", "serve HTTPS with this PEM certificate (reloaded when the file changes); needs --tls-private-key-file")
	f.StringVar(&o.tls.KeyFile, "tls-private-key-file", "", "PEM private key of --tls-cert-file")
	f.BoolVar(&o.readAuth, "read-auth", false,
		"require a Kubernetes bearer token allowed to read ContainerVersions for the dashboard, history and /v1/state "+
			"(TokenReview + SubjectAccessReview; the ServiceAccount needs the system:auth-delegator ClusterRole)")
	f.StringVar(&o.configMapKey, "configmap-key", DefaultSettingsConfigMap,
		"namespace/name of a ConfigMap with controller settings (keys: history, rollback, policy-version-restriction), "+
			"reloaded when it changes; flags given on the command line win; \"\" disables it. The default may be missing")
	o.registry.AddFlags(f)
	o.authz.addFlags(f)
	o.stateExport.addFlags(f)
	o.notify.addFlags(f)
	o.signatures.addFlags(f)
	o.fleet.addFlags(f)
	o.logging.addFlags(f)
	return cmd
}

// resolveLeaseNamespace is --leader-elect-namespace, else the pod's namespace
// (downward API POD_NAMESPACE), else the kubeconfig context's namespace
// (in a pod without POD_NAMESPACE, the service account's). It returns
// where the answer came from, for the log: a namespace that does not exist
// used to be retried forever.
func (o *runOptions) resolveLeaseNamespace(kube *KubeFlags) (namespace, source string) {
	if o.leaseNamespace != "" {
		return o.leaseNamespace, "--leader-elect-namespace"
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns, "POD_NAMESPACE"
	}
	return kube.Namespace(), "the kubeconfig context"
}

func (o *runOptions) run(ctx context.Context, kube *KubeFlags) error {
	tuneGC()
	if o.releasePages {
		releasePages("init") // the package inits are done; startup faults in what it needs
	}
	selector, err := labels.Parse(o.cvSelector)
	if err != nil {
		return fmt.Errorf("--cv-selector: %w", err)
	}
	restrictions, err := policy.ParseRestrictions(o.restrictions)
	if err != nil {
		return fmt.Errorf("--policy-version-restriction: %w", err)
	}
	if _, err := o.tls.Enabled(); err != nil {
		return err
	}
	defaultNotifications, err := o.notify.routes()
	if err != nil {
		return err
	}
	authorization, err := o.authz.settings()
	if err != nil {
		return err
	}
	kubeClient, cvClient, err := o.clients(kube)
	if err != nil {
		return err
	}
	eventsClient, err := o.eventsClient(kube)
	if err != nil {
		return err
	}
	if err := checkKubernetesVersion(ctx, kubeClient.Discovery()); err != nil {
		return err
	}
	logAuthorStamping(ctx, kubeClient.Discovery())
	m := metrics.New()
	notifier := notify.New()
	go notifier.Run(ctx, 4)
	o.registry.KeepManifests = o.provenance // provenance GETs each new digest's manifest
	resolver, reader, err := poller.NewWithReader(o.registry.Options, m.Registry)
	if err != nil {
		return err
	}
	signatures, err := o.signatures.options(reader)
	if err != nil {
		return err
	}
	var provenanceCache *provenance.Cache // one for every namespace's controller: a digest is read once
	if o.provenance {
		provenanceCache = provenance.NewCache(reader)
	}
	platforms := platform.NewCache(reader) // the platform gate: one index read per digest
	sources := fleet.NewObserver()         // promotion sources in other clusters (spec.promotion.from)
	kubeconfigs := &fleet.KubeconfigSecrets{Kube: kubeClient, Clock: clock.RealClock{}}
	var ctrl *multins.Group
	recorder := controller.NewRecorder(eventsClient, controller.EventSenders) // one for every namespace's controller: its senders are shared
	writer := writeback.New(writeback.Config{Observe: m.ObserveWriteBack}, func(key string, st cvv1.WriteBackStatus) {
		ctrl.ReportWriteBack(key, st) // set below, before any write is submitted
	})
	defer writer.Close()
	// One controller per watched namespace (the namespaced install), each
	// with its own informers; every replica starts them, leader or not.
	ctrl = multins.New(o.namespaces, func(namespace string) multins.Member {
		factories := controller.NewFactories(kubeClient, cvClient, controller.Scope{Namespace: namespace, CVSelector: selector})
		if len(o.namespaces) == 0 {
			factories.WithNodes() // a namespaced install may not read nodes: no platform gate there
		}
		return multins.Member{Factories: factories, Controller: controller.New(kubeClient, cvClient, factories.Informers(),
			recorder, clock.RealClock{}, controller.Options{
				Namespace: namespace, Workers: o.workers, Resolver: resolver,
				Metrics: m, ProgressInterval: o.progressEvery, DefaultHistory: o.history, DefaultRollback: o.rollback,
				Restrictions: restrictions, Notifier: notifier, DefaultNotifications: defaultNotifications,
				LastPolledEvery: o.lastPolledEvery, Authorization: authorization, PushFirst: o.pushFirst(),
				Signatures: signatures, Provenance: provenanceCache, Platforms: platforms, WriteBack: writer,
				Fleet: sources, Kubeconfigs: kubeconfigs,
			})}
	})
	if err := o.watchSettings(ctx, kubeClient, ctrl, restrictions); err != nil {
		return err
	}
	leader := &controller.LeaderState{}
	ctrl.SetLeading(leader.IsLeader)
	requests := controller.NewRequests(cvClient, clock.RealClock{})
	requests.Local = ctrl // the leader takes requests in memory; a standby writes them
	caches := readCaches{
		cvs: ctrl.CVLister(), workloads: ctrl.WorkloadListers(), kube: kubeClient, requests: requests,
	}
	caches.tags, _ = reader.(trigger.TagObserver)
	mux, err := o.httpRoutes(m, ctrl, leader, caches)
	if err != nil {
		return err
	}
	o.fleet.run(ctx)
	exportLoop, err := o.stateExport.setup(ctx, mux, kubeClient, cvClient, o.namespaces, leader.IsLeader)
	if err != nil {
		return err
	}
	var handler http.Handler = mux
	if o.readAuth {
		handler = server.NewReadAuth(kubeClient).Wrap(mux)
	}
	// Every replica keeps its caches warm, leader or not, so each serves the
	// dashboard, history and state reads and answers /readyz truthfully.
	ctrl.Start(ctx.Done())
	defer ctrl.Shutdown()
	if o.releasePages {
		go releaseStartupPages(ctx, ctrl.HasSynced, startupSettle)
	}
	le := controller.LeaderElection{
		Enabled: o.leaderElect, Name: o.leaseName,
		LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod,
	}
	if o.leaderElect {
		var source string
		le.Namespace, source = o.resolveLeaseNamespace(kube)
		klog.InfoS("Leader election Lease", "namespace", le.Namespace, "name", le.Name, "namespaceFrom", source)
		if err := controller.CheckLease(ctx, kubeClient, le); err != nil {
			return fmt.Errorf("cannot take the leader Lease %s/%s (set --leader-elect-namespace to an existing namespace "+
				"where cvmanager may create Leases, --leader-elect-name, or --leader-elect=false for a single replica): %w",
				le.Namespace, le.Name, err)
		}
	}
	return o.serveAndLead(ctx, handler, exportLoop, ctrl, leader, kubeClient, le)
}

// watchSettings applies the --configmap-key ConfigMap before the controller
// starts and keeps applying it as it changes.
func (o *runOptions) watchSettings(ctx context.Context, kube kubernetes.Interface, ctrl *multins.Group, restrictions []policy.Restriction) error {
	if o.configMapKey == "" {
		return nil
	}
	namespace, name, err := parseConfigMapKey(o.configMapKey)
	if err != nil {
		return err
	}
	changed := o.flagChanged
	if changed == nil {
		changed = func(string) bool { return false }
	}
	w := &settingsWatcher{
		source: settingsSource{
			flags:       controller.Settings{DefaultHistory: o.history, DefaultRollback: o.rollback, Restrictions: restrictions},
			flagChanged: changed,
		},
		namespace: namespace, name: name, apply: ctrl.UpdateSettings, recorder: newSettingsRecorder(ctx, kube),
	}
	watch, err := w.load(ctx, kube, o.configMapKey != DefaultSettingsConfigMap)
	if err != nil || !watch {
		return err
	}
	go w.run(ctx, kube)
	return nil
}

// clients talk to the API with the tuned QPS/burst (docs/performance.md).
func (o *runOptions) clients(kube *KubeFlags) (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := kube.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = o.kubeQPS, o.kubeBurst
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return requestLogger{next: rt} })
	return newClients(cfg)
}

// eventsClient is the client Events are sent with: a rate limiter of its
// own at half the QPS and burst of the controller's client. Events are best
// effort and sent in the background, so a burst of them (two per rollout)
// must trail the writes that move rollouts, not compete with them at the
// apiserver: at the full rate, a 10,000-CV bench burst patched its last
// Deployment 1.2 s later. They queue meanwhile (controller.NewRecorder
// holds thousands), so trailing loses none. kube-scheduler also gives its
// Events a client of their own.
func (o *runOptions) eventsClient(kube *KubeFlags) (kubernetes.Interface, error) {
	cfg, err := kube.RESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = o.kubeQPS/2, max(o.kubeBurst/2, 1)
	cfg.UserAgent = "cvmanager-events"
	return kubernetes.NewForConfig(kubeclient.Protobuf(cfg))
}

// readCaches are what the HTTP reads are served from: the informer caches
// every replica keeps, and the client for the history ConfigMaps.
type readCaches struct {
	cvs       cvlisters.ContainerVersionLister
	workloads workload.Listers
	kube      kubernetes.Interface
	// requests hand triggers to the leader (in memory on the leader, as
	// request objects from a standby), so any replica accepts them.
	requests *controller.Requests
	// tags learns tag → digest from verified webhook deliveries (the
	// registry layer's version tag cache), when the reader offers it.
	tags trigger.TagObserver
}

// httpRoutes mounts probes, metrics, the dashboard and, when configured,
// pprof, the trigger API and the registry webhooks.
func (o *runOptions) httpRoutes(m *metrics.Metrics, ctrl *multins.Group, leader *controller.LeaderState,
	caches readCaches) (*server.Mux, error) {
	mux := server.NewMux(m.Registry, server.Readiness{Synced: ctrl.HasSynced, Leader: leader.IsLeader})
	dash := dashboard.ForController(caches.cvs, caches.workloads, caches.kube)
	if err := o.fleet.attach(dash); err != nil {
		return nil, err
	}
	dash.Register(mux)
	for _, c := range []prometheus.Collector{dash.DORACollector(), dash.CVStateCollector(), m.LeaderGauge(leader.IsLeader)} {
		if err := m.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	if o.enablePprof {
		server.RegisterPprof(mux)
	}
	if o.triggerKeysDir != "" {
		keys, err := trigger.LoadKeysDir(o.triggerKeysDir)
		if err != nil {
			return nil, err
		}
		trigger.New(keys, caches.cvs, caches.requests, o.triggerRate).Register(mux)
	}
	return mux, o.registerWebhooks(mux, caches, m.Registry)
}

// serveAndLead runs the HTTP server, the export loop and the controller
// (while it holds the lease) until one of them fails or ctx ends.
func (o *runOptions) serveAndLead(ctx context.Context, handler http.Handler, exportLoop func(context.Context),
	ctrl *multins.Group, leader *controller.LeaderState, kube kubernetes.Interface, le controller.LeaderElection) error {
	addr := net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port))
	klog.InfoS("Starting cvmanager", "address", addr, "tls", o.tls.CertFile != "", "readAuth", o.readAuth,
		"namespaces", o.namespaces, "leaderElection", o.leaderElect)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Serve(ctx, addr, handler, o.tls) })
	if exportLoop != nil {
		g.Go(func() error { exportLoop(ctx); return nil })
	}
	g.Go(func() error {
		err := controller.RunLeaderElected(ctx, kube, le, leader, ctrl.Run)
		if err == nil && ctx.Err() == nil {
			return fmt.Errorf("lost the leader lease")
		}
		return err
	})
	return g.Wait()
}

// pushFirst enables push-first polling when webhooks can deliver pushes.
func (o *runOptions) pushFirst() *controller.PushFirst {
	if o.webhookSecret == "" || o.webhookSafety < 0 {
		return nil
	}
	return &controller.PushFirst{SafetyInterval: o.webhookSafety, TrustWindow: o.webhookTrust}
}

func (o *runOptions) registerWebhooks(mux server.Router, caches readCaches, reg prometheus.Registerer) error {
	if o.webhookSecret == "" {
		return nil
	}
	secret, err := readSecretFile("--webhook-secret-file", o.webhookSecret)
	if err != nil {
		return err
	}
	hooks, err := trigger.NewWebhooks(secret, caches.cvs, caches.requests, o.triggerRate)
	if err != nil {
		return err
	}
	hooks.MustRegister(reg)
	if caches.tags != nil {
		hooks.ObserveTags(caches.tags)
	}
	hooks.Register(mux)
	return nil
}
