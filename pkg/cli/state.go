package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/pkg/state"
)

// Backend kinds, the first argument of the state commands.
const (
	backendLocal = "local"
	backendS3    = "s3"
)

// stateBackendFlags select a state backend. The state commands name them
// --path, --endpoint, ...; `run` prefixes them with "state-".
type stateBackendFlags struct {
	path      string
	bucket    string
	region    string
	endpoint  string
	pathStyle bool
}

func (b *stateBackendFlags) addFlags(fs *pflag.FlagSet, prefix string) {
	fs.StringVar(&b.path, prefix+"path", "", "local: a directory; s3: bucket/prefix, s3://bucket/prefix, or the prefix when --"+prefix+"bucket is set")
	fs.StringVar(&b.bucket, prefix+"bucket", "", "s3: the bucket (then --"+prefix+"path is the key prefix in it)")
	fs.StringVar(&b.region, prefix+"region", "", "s3: the bucket's region (default: the AWS SDK's chain, AWS_REGION or profile)")
	fs.StringVar(&b.endpoint, prefix+"endpoint", "", "s3: endpoint of an S3-compatible server or VPC endpoint, e.g. http://127.0.0.1:9000")
	fs.BoolVar(&b.pathStyle, prefix+"path-style", false, "s3: address the bucket in the URL path (most S3-compatible servers need it)")
}

// open builds the backend of kind at path (the flags' path when empty).
func (b *stateBackendFlags) open(ctx context.Context, kind, path string) (state.Backend, error) {
	if path == "" {
		path = b.path
	}
	if path == "" {
		return nil, fmt.Errorf("no state path: pass --path")
	}
	switch kind {
	case backendLocal:
		return state.NewLocal(path)
	case backendS3:
		if b.bucket != "" {
			path = b.bucket + "/" + strings.TrimPrefix(path, "/")
		}
		return state.NewS3(ctx, state.S3Options{Path: path, Region: b.region, Endpoint: b.endpoint, PathStyle: b.pathStyle})
	default:
		return nil, fmt.Errorf("unknown state backend %q: use local or s3", kind)
	}
}

// stateClients are clients for bulk work: the state commands read and write
// thousands of objects, so they get a higher client-side rate than the
// other commands (the apiserver's priority and fairness still applies).
func stateClients(kube *KubeFlags, qps float32, burst int) (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := kube.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = qps, burst, "cvmanager"
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	cvClient, err := versioned.NewForConfig(cfg)
	return kubeClient, cvClient, err
}

// stateOptions are the flags shared by the state commands.
type stateOptions struct {
	backend     stateBackendFlags
	clusterID   string
	identity    string
	namespaces  []string
	force       bool
	concurrency int
	qps         float32
	burst       int
	output      string
	workloads   bool
	helm        bool
	interval    time.Duration
	bindAddress string
	port        int
}

// daemon exports every interval until ctx ends and, with --port, serves
// what the path holds (/v1/state) and the export metrics (/metrics).
func (o *stateOptions) daemon(ctx context.Context, e *state.Exporter, b state.Backend) error {
	if o.port == 0 {
		state.RunLoop(ctx, e, o.interval, func() bool { return true })
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e.Metrics = state.NewExportMetrics(reg)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/state", state.Handler(b))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	addr := net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port))
	klog.InfoS("State daemon serving", "address", addr, "paths", "/v1/state /metrics /healthz", "location", b.String())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Serve(ctx, addr, mux, server.TLSFiles{}) })
	g.Go(func() error { state.RunLoop(ctx, e, o.interval, func() bool { return true }); return nil })
	return g.Wait()
}

func (o *stateOptions) addClusterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.clusterID, "cluster-id", "", "this cluster's id in the manifest (default: the UID of namespace kube-system)")
	fs.StringVar(&o.identity, "identity", state.DefaultIdentity(), "who writes, recorded in the manifest")
	fs.StringSliceVar(&o.namespaces, "namespace", nil, "only these namespaces (repeatable or comma-separated; default all)")
	fs.IntVar(&o.concurrency, "concurrency", state.DefaultConcurrency, "objects read or written in parallel")
	fs.Float32Var(&o.qps, "kube-api-qps", 100, "sustained queries per second to the Kubernetes API")
	fs.IntVar(&o.burst, "kube-api-burst", 200, "burst of queries to the Kubernetes API")
}

func (o *stateOptions) checkOutput() error {
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("unknown output format %q: use text or json", o.output)
	}
	return nil
}

// cluster connects and works out the cluster id.
func (o *stateOptions) cluster(ctx context.Context, kube *KubeFlags) (kubernetes.Interface, versioned.Interface, string, error) {
	kubeClient, cvClient, err := stateClients(kube, o.qps, o.burst)
	if err != nil {
		return nil, nil, "", err
	}
	id := o.clusterID
	if id == "" {
		if id, err = state.ClusterID(ctx, kubeClient); err != nil {
			return nil, nil, "", err
		}
	}
	return kubeClient, cvClient, id, nil
}

var backendArgs = cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)

// HelmFactory opens the Helm release store of the cluster a kubeconfig and
// context select. The state commands take it from their caller so that
// pkg/cli does not link the Helm SDK: only cmd/cvmanager-state passes
// pkg/helmrelease's New, and the controller binary stays light.
type HelmFactory func(kubeconfig, kubeContext string) state.HelmReleases

// NewStateCommand is `cvmanager state` with its subcommands, run in this
// process with helm as the Helm release store.
func NewStateCommand(kube *KubeFlags, helm HelmFactory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Export, import, show and clear the release state (failover, cluster upgrades)",
		Long: `The release state is every ContainerVersion (spec, last successful version and
digest) and its history, one object per CV plus a manifest, in a local
directory or an S3 bucket. Export it from one cluster, import it into another:
the imported CVs deploy their last-known-good versions first. See docs/state.md.`,
	}
	cmd.AddCommand(newStateExportCommand(kube, helm), newStateImportCommand(kube, helm), newStateShowCommand(), newStateClearCommand())
	return cmd
}

func newStateExportCommand(kube *KubeFlags, helm HelmFactory) *cobra.Command {
	o := &stateOptions{}
	cmd := &cobra.Command{
		Use:       "export local|s3",
		Short:     "Write every ContainerVersion and its history to a state path",
		Example:   "  cvmanager state export s3 --path s3://releases/prod-eu --region eu-west-1",
		Args:      backendArgs,
		ValidArgs: []string{backendLocal, backendS3},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := o.backend.open(ctx, args[0], "")
			if err != nil {
				return err
			}
			kubeClient, cvClient, id, err := o.cluster(ctx, kube)
			if err != nil {
				return err
			}
			e := &state.Exporter{Kube: kubeClient, CVs: cvClient, Backend: b, ClusterID: id, Identity: o.identity,
				Namespaces: o.namespaces, Force: o.force, Concurrency: o.concurrency, Workloads: o.workloads}
			if o.helm {
				e.Helm = helm(kube.Kubeconfig, kube.Context)
			}
			if o.interval > 0 {
				// Daemon mode (the chart's stateDaemon): export until stopped.
				e.Interval = o.interval
				return o.daemon(ctx, e, b)
			}
			res, err := e.Export(ctx)
			if err != nil {
				return err
			}
			return printState(cmd.OutOrStdout(), o.output, res, exportSummary(res))
		},
	}
	o.backend.addFlags(cmd.Flags(), "")
	o.addClusterFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.force, "force", false, "write even though another cluster owns the path")
	cmd.Flags().DurationVar(&o.interval, "interval", 0, "daemon mode: export this often until stopped (0: export once); run only one exporter per path")
	cmd.Flags().StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "daemon mode: address of the HTTP server (use 0.0.0.0 in a pod)")
	cmd.Flags().IntVar(&o.port, "port", 0, "daemon mode: port of the HTTP server serving /v1/state, /metrics and /healthz (0: no server)")
	cmd.Flags().BoolVar(&o.helm, "helm-releases", false, "also export every deployed Helm release of the namespaces (chart and values, read from Helm's release Secrets)")
	cmd.Flags().BoolVar(&o.workloads, "workloads", false, "also export the Deployments, StatefulSets, DaemonSets and CronJobs the CVs select and the Services blue-green CVs switch, cleaned of cluster-specific fields")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output: text or json")
	return cmd
}

func newStateImportCommand(kube *KubeFlags, helm HelmFactory) *cobra.Command {
	o := &stateOptions{}
	var newPath string
	var dryRun, createNamespaces bool
	cmd := &cobra.Command{
		Use:   "import local|s3",
		Short: "Recreate exported ContainerVersions, pinned to their last successful versions",
		Long: `Import recreates every exported ContainerVersion (and its history) that does not
exist yet, each pinned to its last successful version and digest, so this
cluster deploys last-known-good first and then follows the tag again. Start
the controller before or right after importing. CVs that already exist are
left alone. The path is then claimed for this cluster; it is refused while
another cluster's continuous exporter still writes it, unless --new-path
(this cluster's state goes there) or --force.`,
		Example: `  cvmanager state import s3 --path s3://releases/prod-eu --new-path prod-eu-green --dry-run
  cvmanager state import local --path /backup/state --namespace shop,payments`,
		Args:      backendArgs,
		ValidArgs: []string{backendLocal, backendS3},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			im, err := o.importer(ctx, kube, helm, args[0], newPath)
			if err != nil {
				return err
			}
			im.DryRun, im.CreateNamespaces = dryRun, createNamespaces
			res, err := im.Import(ctx)
			if err != nil {
				return err
			}
			if err := printState(cmd.OutOrStdout(), o.output, res, importSummary(res)); err != nil {
				return err
			}
			if n := countWorkloads(res, state.ImportFailed); n > 0 {
				return fmt.Errorf("%d workloads could not be created (see above)", n)
			}
			return nil
		},
	}
	o.backend.addFlags(cmd.Flags(), "")
	o.addClusterFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&newPath, "new-path", "", "write this cluster's state to this path (same backend and bucket options) instead of taking over --path")
	f.BoolVar(&dryRun, "dry-run", false, "read and check everything, show what would be created, write nothing")
	f.BoolVar(&o.force, "force", false, "take over a path whose owner still looks alive (only when it is gone for good)")
	f.BoolVar(&createNamespaces, "create-namespaces", false, "create missing namespaces instead of refusing")
	f.StringVarP(&o.output, "output", "o", "text", "output: text or json")
	return cmd
}

func (o *stateOptions) importer(ctx context.Context, kube *KubeFlags, helm HelmFactory, kind, newPath string) (*state.Importer, error) {
	src, err := o.backend.open(ctx, kind, "")
	if err != nil {
		return nil, err
	}
	var dst state.Backend
	if newPath != "" {
		if dst, err = o.backend.open(ctx, kind, newPath); err != nil {
			return nil, fmt.Errorf("--new-path: %w", err)
		}
	}
	kubeClient, cvClient, id, err := o.cluster(ctx, kube)
	if err != nil {
		return nil, err
	}
	author, err := authz.WhoAmI(ctx, kubeClient)
	if err != nil {
		return nil, err
	}
	return &state.Importer{Kube: kubeClient, CVs: cvClient, Source: src, NewPath: dst, ClusterID: id,
		Identity: o.identity, Namespaces: o.namespaces, Force: o.force, Concurrency: o.concurrency, Author: author,
		Helm: helm(kube.Kubeconfig, kube.Context)}, nil
}

func exportSummary(res state.ExportResult) string {
	workloads := ""
	if res.Workloads > 0 {
		workloads = fmt.Sprintf(" and %d workloads", res.Workloads)
	}
	return fmt.Sprintf("exported %d ContainerVersions%s to %s (%d written, %d unchanged, %d removed) in %s",
		res.CVs, workloads, res.Location, res.Written, res.Unchanged, res.Deleted, res.Duration.Round(time.Millisecond))
}

func countWorkloads(res state.ImportResult, action string) int {
	n := 0
	for _, w := range res.Workloads {
		if w.Action == action {
			n++
		}
	}
	return n
}

func importSummary(res state.ImportResult) string {
	var b strings.Builder
	verb, created := "imported", "created"
	if res.DryRun {
		verb, created = "dry run: would import", "to create"
	}
	for _, w := range res.Workloads {
		fmt.Fprintf(&b, "%-12s %s %s/%s", w.Action, w.Kind, w.Namespace, w.Name)
		if w.Detail != "" {
			fmt.Fprintf(&b, ": %s", w.Detail)
		}
		b.WriteString("\n")
	}
	if len(res.Workloads) > 0 {
		fmt.Fprintf(&b, "workloads: %d %s, %d skipped, %d failed\n", countWorkloads(res, state.ImportCreated)+countWorkloads(res, state.ImportPlanned),
			created, countWorkloads(res, state.ImportSkipped), countWorkloads(res, state.ImportFailed))
	}
	for _, it := range res.Items {
		pin := "no successful version: follows its tag"
		if it.Digest != "" {
			pin = "pinned to " + it.Version + " (" + it.Digest + ")"
		}
		fmt.Fprintf(&b, "%-12s %s/%s, %s, %d history records\n", it.Action, it.Namespace, it.Name, pin, it.HistoryRecords)
	}
	fmt.Fprintf(&b, "%s %d ContainerVersions from %s (owner %s): %d %s, %d already present, in %s",
		verb, len(res.Items), res.From, res.Owner, res.Count(state.ImportCreated)+res.Count(state.ImportPlanned), created,
		res.Count(state.ImportExists), res.Duration.Round(time.Millisecond))
	return b.String()
}

func newStateShowCommand() *cobra.Command {
	var b stateBackendFlags
	var output string
	cmd := &cobra.Command{
		Use:       "show local|s3",
		Short:     "Show what a state path holds and who owns it (needs no cluster)",
		Args:      backendArgs,
		ValidArgs: []string{backendLocal, backendS3},
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, err := b.open(cmd.Context(), args[0], "")
			if err != nil {
				return err
			}
			l := state.List(cmd.Context(), backend, time.Now())
			if l.Error != "" {
				return fmt.Errorf("%s: %s", l.Location, l.Error)
			}
			return printState(cmd.OutOrStdout(), output, l, listingSummary(l))
		},
	}
	b.addFlags(cmd.Flags(), "")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output: text or json")
	return cmd
}

func listingSummary(l state.Listing) string {
	if l.Empty {
		return l.Location + ": empty"
	}
	m := l.Manifest
	alive := "not exporting"
	if l.Alive {
		alive = "exporting every " + time.Duration(m.Owner.Interval).String()
	}
	return fmt.Sprintf("%s: %d ContainerVersions exported %s by cluster %s; owner %s (%s), %s, last written %s",
		l.Location, l.Objects, m.Time.Format(time.RFC3339), m.ClusterID, m.Owner.ClusterID, m.Owner.Identity,
		alive, m.Owner.Heartbeat.Format(time.RFC3339))
}

func newStateClearCommand() *cobra.Command {
	var b stateBackendFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "clear local|s3",
		Short: "Remove every state object under a path, all versions included (needs no cluster)",
		Long: `Clear removes the manifest and every CV object under the path (on a versioned
bucket, every version and delete marker). It refuses while a continuous
exporter still writes the path, since it would write it back; --force clears
anyway, and also clears a path whose manifest is unreadable.`,
		Args:      backendArgs,
		ValidArgs: []string{backendLocal, backendS3},
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, err := b.open(cmd.Context(), args[0], "")
			if err != nil {
				return err
			}
			if err := state.Clear(cmd.Context(), backend, force, time.Now()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cleared %s\n", backend)
			return err
		},
	}
	b.addFlags(cmd.Flags(), "")
	cmd.Flags().BoolVar(&force, "force", false, "clear even while an exporter owns the path")
	return cmd
}

func printState(w io.Writer, output string, v any, text string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(w, text)
	return err
}
