// Package localregistry runs a real CNCF Distribution registry in-process on
// 127.0.0.1 with in-memory storage, and pushes random images to it. The
// controller's end-to-end tests, the registry layer's tests and `make demo`
// use it.
//
// Options protect it with Distribution's own access controllers: htpasswd
// (Basic auth) or token (Bearer tokens from a token server started beside
// it). Pushes authenticate with the configured user.
package localregistry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // storage driver
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:<port>" (or "<name>:<port>" with WithHostName),
	// reached over plain HTTP.
	Host string
	// Tokens is the token server when WithTokenAuth was given, else nil.
	Tokens *TokenServer

	server   *http.Server
	dir      string
	auth     authn.Authenticator
	addr     string // the listener's 127.0.0.1:<port> under WithHostName
	requests atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
}

// Start serves a registry on addr ("127.0.0.1:0" picks a free port).
func Start(addr string, opts ...Option) (*Registry, error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}}
	cfg.HTTP.Secret = "local-registry"
	dir, err := os.MkdirTemp("", "localregistry-")
	if err != nil {
		return nil, err
	}
	r := &Registry{dir: dir, byMethod: map[string]int64{}, auth: authn.Anonymous}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.cleanup()
		return nil, err
	}
	r.Host = ln.Addr().String()
	if s.hostName != "" {
		r.Host = net.JoinHostPort(s.hostName, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		r.addr = ln.Addr().String()
	}
	if r.Tokens, err = configureAuth(cfg, s, dir, r.URL()); err != nil {
		_ = ln.Close()
		r.cleanup()
		return nil, err
	}
	if s.notify != nil {
		cfg.Notifications.Endpoints = []configuration.Endpoint{*s.notify}
	}
	if s.htpasswd || s.token {
		r.auth = &authn.Basic{Username: s.username, Password: s.password}
	}
	if s.log != nil {
		logrus.SetOutput(s.log)
	} else {
		logrus.SetOutput(io.Discard) // Distribution logs every request
	}
	mux := http.NewServeMux()
	mux.Handle("/", r.counting(handlers.NewApp(context.Background(), cfg)))
	if r.Tokens != nil {
		mux.Handle("/token", r.Tokens)
	}
	for path, h := range s.handlers {
		mux.Handle(path, h)
	}
	r.server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: mux}
	go func() {
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logrus.StandardLogger().Out = io.Discard
		}
	}()
	return r, nil
}

// counting counts /v2/<name>/… requests by method and kind before serving.
func (r *Registry) counting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
			r.requests.Add(1)
			r.mu.Lock()
			r.byMethod[req.Method+" "+kind(req.URL.Path)]++
			if repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/"+kind(req.URL.Path)+"/"); ok {
				r.byMethod[req.Method+" "+kind(req.URL.Path)+" "+repo]++
			}
			r.mu.Unlock()
		}
		next.ServeHTTP(w, req)
	})
}

// Close stops the server.
func (r *Registry) Close() error {
	err := r.server.Close()
	r.cleanup()
	return err
}

func (r *Registry) cleanup() {
	_ = os.RemoveAll(r.dir)
}

// URL is "http://127.0.0.1:<port>".
func (r *Registry) URL() string { return "http://" + r.Host }

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

// CountFor is Count for one repository path ("team/app"): a test tells
// one CV's polls from another's on a shared registry.
func (r *Registry) CountFor(method, pathKind, path string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byMethod[method+" "+pathKind+" "+path]
}

func kind(path string) string {
	for _, k := range []string{"/manifests/", "/tags/", "/blobs/"} {
		if strings.Contains(path, k) {
			return strings.Trim(k, "/")
		}
	}
	return "other"
}

func (r *Registry) ref(path, tag string) (name.Tag, error) {
	return name.NewTag(r.Repo(path)+":"+tag, name.Insecure)
}

func (r *Registry) remoteOptions() []remote.Option {
	return []remote.Option{remote.WithAuth(r.auth), remote.WithTransport(r.Transport())}
}

// Transport reaches this registry: with WithHostName it dials 127.0.0.1
// for Host, so clients can use the DNS name; other hosts are dialled as
// usual.
func (r *Registry) Transport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if r.addr == "" {
		return t
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	t.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		if address == r.Host {
			address = r.addr
		}
		return dialer.DialContext(ctx, network, address)
	}
	return t
}

// StartForTest starts a registry on a free 127.0.0.1 port, closed with t.
func StartForTest(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	reg, err := Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}
