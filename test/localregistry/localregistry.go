// Package localregistry runs a real CNCF Distribution registry in-process on
// 127.0.0.1 with in-memory storage, and pushes random images to it. The
// controller's end-to-end tests and `make demo` use it.
package localregistry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // storage driver
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:<port>", reached over plain HTTP.
	Host     string
	server   *http.Server
	requests atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
}

// Start serves a registry on addr ("127.0.0.1:0" picks a free port).
func Start(addr string) (*Registry, error) {
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}}
	cfg.HTTP.Secret = "local-registry"
	logrus.SetOutput(io.Discard) // Distribution logs every request
	app := handlers.NewApp(context.Background(), cfg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), byMethod: map[string]int64{}}
	r.server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
			r.requests.Add(1)
			r.mu.Lock()
			r.byMethod[req.Method+" "+kind(req.URL.Path)]++
			r.mu.Unlock()
		}
		app.ServeHTTP(w, req)
	})}
	go func() {
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logrus.StandardLogger().Out = io.Discard
		}
	}()
	return r, nil
}

// Close stops the server.
func (r *Registry) Close() error { return r.server.Close() }

// Repo is the full repository name of path on this registry.
func (r *Registry) Repo(path string) string { return r.Host + "/" + path }

// Requests counts /v2/<name>/… requests received (manifests, tags, blobs).
func (r *Registry) Requests() int64 { return r.requests.Load() }

// Count returns how many requests of a method reached a kind of path:
// Count("HEAD", "manifests"), Count("GET", "tags").
func (r *Registry) Count(method, pathKind string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byMethod[method+" "+pathKind]
}

func kind(path string) string {
	for _, k := range []string{"/manifests/", "/tags/", "/blobs/"} {
		if strings.Contains(path, k) {
			return strings.Trim(k, "/")
		}
	}
	return "other"
}

// Push uploads a new random image (one small layer) under every tag and
// returns its digest. Pushing a tag again moves it to new content.
func (r *Registry) Push(path string, tags ...string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	for _, tag := range tags {
		ref, err := name.NewTag(r.Repo(path)+":"+tag, name.Insecure)
		if err != nil {
			return "", err
		}
		if err := remote.Write(ref, img); err != nil {
			return "", err
		}
	}
	return digest.String(), nil
}
