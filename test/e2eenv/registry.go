package e2eenv

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// Registry is a real CNCF Distribution registry on 127.0.0.1, closed at the
// end of the test.
type Registry struct{ *localregistry.Registry }

// NewRegistry starts a registry for the test.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := localregistry.Start("127.0.0.1:0")
	Must(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return &Registry{r}
}

// MustPush pushes a fresh image under tags and returns its digest.
func (r *Registry) MustPush(t testing.TB, path string, tags ...string) string {
	t.Helper()
	digest, err := r.Push(path, tags...)
	Must(t, err)
	return digest
}

// Resolver is the product's own resolver, built as `cvmanager run` builds it.
func (r *Registry) Resolver(t testing.TB) poller.ImageResolver {
	t.Helper()
	res, err := poller.New(poller.Options{InsecureRegistries: []string{r.Host}}, metrics.New().Registry)
	Must(t, err)
	return res
}

// ResolverAndReader is Resolver with the registry layer's ArtifactReader
// over the same clients, as `cvmanager run` builds them for signature
// verification.
func (r *Registry) ResolverAndReader(t testing.TB) (poller.ImageResolver, registry.ArtifactReader) {
	t.Helper()
	res, reader, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{r.Host}}, metrics.New().Registry)
	Must(t, err)
	return res, reader
}

// Elected is a controller running behind leader election.
type Elected struct {
	State *controller.LeaderState
	Stop  func()
}

// StartElected runs a controller behind leader election, as `cvmanager run`
// does, under the shipped RBAC.
func (e *Env) StartElected(reg *Registry, le controller.LeaderElection, identity string) *Elected {
	le.Identity = identity
	cfg := ControllerConfig(e.T)
	kube := kubernetes.NewForConfigOrDie(cfg)
	ctrl := NewController(kube, versioned.NewForConfigOrDie(cfg), e.Options(reg.Resolver(e.T)))
	ctx, cancel := context.WithCancel(e.Ctx)
	state := &controller.LeaderState{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = controller.RunLeaderElected(ctx, kube, le, state, ctrl.Run)
	}()
	stop := func() { cancel(); <-done }
	e.T.Cleanup(stop)
	return &Elected{State: state, Stop: stop}
}

// ProgressInterval is how often tests' controllers re-check a rollout.
const ProgressInterval = 500 * time.Millisecond
