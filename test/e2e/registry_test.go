package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"cvmanager.dev/cvmanager/pkg/syncer"
)

type controllerResolver = syncer.ImageResolver

// testRegistry is a real CNCF Distribution registry (in-memory storage)
// served on 127.0.0.1, counting the requests it receives.
type testRegistry struct {
	server *httptest.Server
	host   string
	count  atomic.Int64
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}}
	cfg.Log.Level = "error"
	cfg.HTTP.Secret = "test-secret"
	logrus.SetOutput(io.Discard) // the registry logs every request
	app := handlers.NewApp(context.Background(), cfg)
	r := &testRegistry{}
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
			r.count.Add(1)
		}
		app.ServeHTTP(w, req)
	}))
	t.Cleanup(r.server.Close)
	r.host = strings.TrimPrefix(r.server.URL, "http://")
	return r
}

func (r *testRegistry) repo(path string) string { return r.host + "/" + path }

// requests counts /v2/<name>/... requests (manifests, tags, blobs).
func (r *testRegistry) requests() int64 { return r.count.Load() }

// push uploads a new random image under every tag and returns its digest.
func (r *testRegistry) push(t *testing.T, path string, tags ...string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	must(t, err)
	digest, err := img.Digest()
	must(t, err)
	for _, tag := range tags {
		ref, err := name.NewTag(r.repo(path)+":"+tag, name.Insecure)
		must(t, err)
		must(t, remote.Write(ref, img))
	}
	return digest.String()
}

// resolver returns the resolver the controller uses in this test.
func (r *testRegistry) resolver(t *testing.T) controllerResolver { return headResolver{} }

// headResolver is a plain resolver for tests of the controller: HEAD for the
// digest, then the tags matching versionSyntax for the version.
type headResolver struct{}

func (headResolver) Resolve(ctx context.Context, req syncer.ResolveRequest) (syncer.ResolvedImage, error) {
	ref, err := name.NewTag(req.Repo+":"+req.Tag, name.Insecure)
	if err != nil {
		return syncer.ResolvedImage{}, err
	}
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		return syncer.ResolvedImage{}, err
	}
	out := syncer.ResolvedImage{Digest: desc.Digest.String()}
	if req.VersionSyntax == nil {
		return out, nil
	}
	tags, err := remote.List(ref.Context(), remote.WithContext(ctx))
	if err != nil {
		return syncer.ResolvedImage{}, err
	}
	for _, tag := range tags {
		if !req.VersionSyntax.MatchString(tag) {
			continue
		}
		d, err := remote.Head(ref.Context().Tag(tag), remote.WithContext(ctx))
		if err == nil && d.Digest == desc.Digest {
			out.Version = tag
			break
		}
	}
	return out, nil
}
