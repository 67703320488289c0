package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/pkg/trigger"
)

// runOptions are the flags of `cvmanager run`. Names follow the original
// cvmanager where it had one (--port, --history, --rollback, --k8s-config).
type runOptions struct {
	namespace       string
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
	registry        RegistryFlags
	enablePprof     bool
	stateExport     stateExportFlags
}

func newRunCommand(kube *KubeFlags) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the controller: watch ContainerVersions and roll workloads out",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), kube) },
	}
	f := cmd.Flags()
	f.StringVar(&o.namespace, "namespace", "", "watch only this namespace (default: all namespaces)")
	f.StringVar(&o.cvSelector, "cv-selector", "", "manage only ContainerVersions with these labels (label selector)")
	f.IntVar(&o.workers, "concurrent-syncs", 4, "ContainerVersions synced in parallel")
	f.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address of the HTTP server (use 0.0.0.0 in a pod)")
	f.IntVar(&o.port, "port", 8080, "port of the HTTP server (metrics, probes, dashboard)")
	f.BoolVar(&o.history, "history", false, "record history for every CV, even without spec.history.enabled")
	f.BoolVar(&o.rollback, "rollback", false, "roll back failed rollouts for every CV, even without spec.rollback.enabled")
	f.Float32Var(&o.kubeQPS, "kube-api-qps", 50, "sustained queries per second to the Kubernetes API")
	f.IntVar(&o.kubeBurst, "kube-api-burst", 100, "burst of queries to the Kubernetes API")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader with a Lease so only one replica acts")
	f.StringVar(&o.leaseNamespace, "leader-elect-namespace", defaultLeaseNamespace(), "namespace of the leader Lease")
	f.StringVar(&o.leaseName, "leader-elect-name", "cvmanager", "name of the leader Lease")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lease lasts without renewal")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader retries renewing")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to acquire the lease")
	f.DurationVar(&o.progressEvery, "progress-interval", 2*time.Second, "re-examine unfinished rollouts at least this often")
	f.DurationVar(&o.lastPolledEvery, "last-polled-interval", 15*time.Minute,
		"least time between writes of a CV's status.lastPolled (0: twice per spec.livenessSeconds, as a standalone `cr sync` does)")
	f.StringVar(&o.triggerKeysDir, "trigger-keys-dir", "", "directory of API keys (a mounted Secret) enabling POST /v1/trigger")
	f.Float64Var(&o.triggerRate, "trigger-rate", 10, "trigger requests per second accepted, all keys together")
	f.StringVar(&o.webhookSecret, "webhook-secret-file", "", "file holding the shared secret that enables /v1/webhooks/{dockerhub,distribution,ecr}")
	f.StringArrayVar(&o.restrictions, "policy-version-restriction", nil,
		"<namespace-regex>=<version-regex>: versions deployed in matching namespaces must match (repeatable; CVs cannot loosen it)")
	f.BoolVar(&o.enablePprof, "enable-pprof", false, "serve Go profiles at /debug/pprof/ on the HTTP port (for performance work; off by default)")
	o.registry.AddFlags(f)
	o.stateExport.addFlags(f)
	return cmd
}

// defaultLeaseNamespace is the pod's namespace in a cluster (downward API
// POD_NAMESPACE), else cvmanager-system.
func defaultLeaseNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "cvmanager-system"
}

func (o *runOptions) run(ctx context.Context, kube *KubeFlags) error {
	selector, err := labels.Parse(o.cvSelector)
	if err != nil {
		return fmt.Errorf("--cv-selector: %w", err)
	}
	cfg, err := kube.RESTConfig()
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = o.kubeQPS, o.kubeBurst
	cfg.UserAgent = "cvmanager"
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cvClient, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var restrictions []policy.Restriction
	for _, r := range o.restrictions {
		parsed, err := policy.ParseRestriction(r)
		if err != nil {
			return fmt.Errorf("--policy-version-restriction: %w", err)
		}
		restrictions = append(restrictions, parsed)
	}
	m := metrics.New()
	notifier := notify.New()
	go notifier.Run(ctx, 4)
	resolver, err := o.registry.NewResolver(m)
	if err != nil {
		return err
	}
	ctrl := controller.New(kubeClient, cvClient, controller.Options{
		Namespace: o.namespace, CVSelector: selector, Workers: o.workers, Resolver: resolver,
		Metrics: m, ProgressInterval: o.progressEvery, DefaultHistory: o.history, DefaultRollback: o.rollback,
		Restrictions: restrictions, Notifier: notifier, LastPolledEvery: o.lastPolledEvery,
	})
	leader := &controller.LeaderState{}
	mux := server.NewMux(m.Registry, server.Readiness{Synced: ctrl.HasSynced, Leader: leader.IsLeader})
	dashboard.ForController(ctrl.CVLister(), ctrl.WorkloadListers(), kubeClient).Register(mux)
	if o.enablePprof {
		server.RegisterPprof(mux)
	}
	if o.triggerKeysDir != "" {
		keys, err := trigger.LoadKeysDir(o.triggerKeysDir)
		if err != nil {
			return err
		}
		trigger.New(keys, ctrl.CVLister(), ctrl, o.triggerRate).Register(mux)
	}
	if err := o.registerWebhooks(mux, ctrl); err != nil {
		return err
	}
	exportLoop, err := o.stateExport.setup(ctx, mux, kubeClient, cvClient, o.namespace, leader.IsLeader)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port))
	klog.InfoS("Starting cvmanager", "address", addr, "namespace", o.namespace, "leaderElection", o.leaderElect)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Serve(ctx, addr, mux) })
	if exportLoop != nil {
		g.Go(func() error { exportLoop(ctx); return nil })
	}
	g.Go(func() error {
		le := controller.LeaderElection{
			Enabled: o.leaderElect, Namespace: o.leaseNamespace, Name: o.leaseName,
			LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod,
		}
		err := controller.RunLeaderElected(ctx, kubeClient, le, leader, ctrl.Run)
		if err == nil && ctx.Err() == nil {
			return fmt.Errorf("lost the leader lease")
		}
		return err
	})
	return g.Wait()
}

func (o *runOptions) registerWebhooks(mux *http.ServeMux, ctrl *controller.Controller) error {
	if o.webhookSecret == "" {
		return nil
	}
	secret, err := os.ReadFile(o.webhookSecret)
	if err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	hooks, err := trigger.NewWebhooks(strings.TrimSpace(string(secret)), ctrl.CVLister(), ctrl)
	if err != nil {
		return err
	}
	hooks.Register(mux)
	return nil
}
