package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/pkg/state"
)

// stateExportFlags are run's state flags: where the state lives (served at
// /v1/state) and how often the leader exports to it.
type stateExportFlags struct {
	kind      string
	backend   stateBackendFlags
	interval  time.Duration
	clusterID string
	identity  string
	workloads bool
}

func (s *stateExportFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.kind, "state-backend", "", "state backend, local or s3: serves /v1/state and, with --export-interval, receives the exports")
	s.backend.addFlags(fs, "state-")
	fs.DurationVar(&s.interval, "export-interval", 0, "export the release state this often while leading (0: never); needs --state-backend")
	fs.StringVar(&s.clusterID, "cluster-id", "", "this cluster's id in exported manifests (default: the UID of namespace kube-system, which needs get on it)")
	fs.StringVar(&s.identity, "state-identity", state.DefaultIdentity(), "who exports, recorded in the manifest")
	fs.BoolVar(&s.workloads, "export-workloads", false, "also export the workloads the CVs manage and the Services blue-green CVs switch (see state export --workloads)")
}

// setup registers /v1/state when a backend is configured and returns the
// export loop to run when --export-interval is set (nil otherwise).
func (s *stateExportFlags) setup(ctx context.Context, mux server.Router, kube kubernetes.Interface, cvs versioned.Interface,
	namespaces []string, isLeader func() bool) (func(context.Context), error) {
	if s.kind == "" {
		if s.interval > 0 {
			return nil, fmt.Errorf("--export-interval needs --state-backend local|s3 and --state-path")
		}
		return nil, nil
	}
	b, err := s.backend.open(ctx, s.kind, "")
	if err != nil {
		return nil, fmt.Errorf("--state-backend: %w", err)
	}
	mux.Handle("GET /v1/state", state.Handler(b))
	if s.interval <= 0 {
		return nil, nil
	}
	id := s.clusterID
	if id == "" {
		if id, err = state.ClusterID(ctx, kube); err != nil {
			return nil, err
		}
	}
	e := &state.Exporter{Kube: kube, CVs: cvs, Backend: b, ClusterID: id, Identity: s.identity, Interval: s.interval}
	e.Namespaces, e.Workloads = namespaces, s.workloads
	return func(ctx context.Context) { state.RunLoop(ctx, e, s.interval, isLeader) }, nil
}
