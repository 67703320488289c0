// Package faultproxy is an HTTP reverse proxy to put in front of a test
// registry (test/localregistry) to make it misbehave the way real registries
// do: 429 with Retry-After, 5xx bursts, slow answers, a missing
// Docker-Content-Digest, Quay-style Link headers (no angle brackets, opaque
// token), Nexus-style links without the port, tag lists cut into small
// pages, and connection resets. It counts and logs every request it
// receives, by method and path kind, so tests can assert what a client sent.
//
// Typical use:
//
//	p, _ := faultproxy.Start(reg.URL())
//	defer p.Close()
//	p.Inject(faultproxy.Match{Method: "HEAD", Kind: "manifests", Times: 1}, faultproxy.TooManyRequests("5"))
//	... resolve p.Repo("team/app") ...
//	p.Count("GET", "manifests")
package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a running fault-injecting reverse proxy on 127.0.0.1.
type Proxy struct {
	// Host is "127.0.0.1:<port>": use it as the registry host (plain HTTP).
	Host string

	target string // host:port of the registry behind
	server *http.Server
	proxy  *httputil.ReverseProxy

	mu     sync.Mutex
	rules  []*Rule
	counts map[string]int64
	log    []Request
}

// Request is one request the proxy received and what it did with it.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	// Kind is "manifests", "tags", "blobs" or "other".
	Kind string
	// Status is the status sent back (0 for a reset connection).
	Status int
}

// Start proxies to target ("http://127.0.0.1:5000").
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not a URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Host: ln.Addr().String(), target: u.Host, counts: map[string]int64{}}
	p.proxy = httputil.NewSingleHostReverseProxy(u)
	p.proxy.ModifyResponse = p.modifyResponse
	p.server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(p.serve)}
	go func() {
		if err := p.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener failed; requests will fail and tests report it
		}
	}()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.server.Close() }

// URL is "http://127.0.0.1:<port>".
func (p *Proxy) URL() string { return "http://" + p.Host }

// Repo is the full repository name of path as reached through the proxy.
func (p *Proxy) Repo(path string) string { return p.Host + "/" + path }

// Count returns how many requests of a method reached a kind of path
// ("manifests", "tags", "blobs", "other"), faults included. Method "" counts
// every method.
func (p *Proxy) Count(method, kind string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if method != "" {
		return p.counts[method+" "+kind]
	}
	var n int64
	for key, c := range p.counts {
		if strings.HasSuffix(key, " "+kind) {
			n += c
		}
	}
	return n
}

// Requests returns the log of requests received so far, oldest first.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.log...)
}

// Kind names the kind of a registry path: "manifests", "tags", "blobs",
// or "other" (the /v2/ ping, token endpoints).
func Kind(path string) string {
	for _, k := range []string{"manifests", "tags", "blobs"} {
		if strings.Contains(path, "/"+k+"/") {
			return k
		}
	}
	return "other"
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	kind := Kind(r.URL.Path)
	faults := p.take(r.Method, kind)
	entry := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Kind: kind}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() { p.record(entry, rec.status) }()
	if applyBefore(rec, r, faults) {
		return
	}
	translateQuayToken(r)
	p.proxy.ServeHTTP(rec, r.WithContext(withFaults(r.Context(), faults)))
}

func (p *Proxy) record(entry Request, status int) {
	entry.Status = status
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[entry.Method+" "+entry.Kind]++
	p.log = append(p.log, entry)
}

// statusRecorder remembers the status sent; a reset sets it to 0.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Hijack lets a Reset fault take the connection over.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("faultproxy: connection cannot be hijacked")
	}
	return h.Hijack()
}

// StartForTest puts a proxy in front of target, closed with t.
func StartForTest(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}
