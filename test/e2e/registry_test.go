package e2e

import (
	"testing"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/test/localregistry"
)

type controllerResolver = syncer.ImageResolver

// testRegistry is a real CNCF Distribution registry on 127.0.0.1.
type testRegistry struct{ *localregistry.Registry }

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r, err := localregistry.Start("127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return &testRegistry{r}
}

func (r *testRegistry) repo(path string) string { return r.Repo(path) }

func (r *testRegistry) requests() int64 { return r.Requests() }

func (r *testRegistry) push(t *testing.T, path string, tags ...string) string {
	t.Helper()
	digest, err := r.Push(path, tags...)
	must(t, err)
	return digest
}

// resolver is the product's own resolver, as `cvmanager run` builds it.
func (r *testRegistry) resolver(t *testing.T) controllerResolver {
	t.Helper()
	flags := &cli.RegistryFlags{InsecureRegistries: []string{r.Host}}
	res, err := flags.NewResolver(metrics.New())
	must(t, err)
	return res
}
