package main

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"cvmanager.dev/cvmanager/test/faultproxy"
)

// countingProxy sits between the controller and the registry. The
// registry's own counters say how many requests arrived; the proxy also
// says when (per second, for the restart spread) and when each new digest
// was first answered for a tag (the poll that saw a tag move).
type countingProxy struct {
	host   string
	server *http.Server

	mu        sync.Mutex
	counts    map[string]int64 // "HEAD manifests", "GET manifests", "GET tags", ...
	perSecond map[int64]int64  // unix second → requests
	firstSeen map[string]time.Time
	heads     map[string][]time.Time // repository path → every HEAD of a manifest, in order
	requests  map[string][]time.Time // repository path → every request for it, in order
	byRepo    map[string]int64       // "GET blobs team/app": requests by method, kind and repository
	errs      int64                  // answers ≥ 400
}

// benchPushAgent marks the bench's own pushes through a proxy (so the
// registry's notifications name the proxy's host, as CI pushing under the
// name the cluster pulls from would): the proxy forwards them uncounted.
const benchPushAgent = "cvmanager-bench-push"

func benchPush(r *http.Request) bool { return strings.HasPrefix(r.UserAgent(), benchPushAgent) }

// startProxy forwards 127.0.0.1:<free> to the registry at target.
func startProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{host: ln.Addr().String(), counts: map[string]int64{},
		perSecond: map[int64]int64{}, firstSeen: map[string]time.Time{}, heads: map[string][]time.Time{},
		requests: map[string][]time.Time{}, byRepo: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ModifyResponse = p.observe
	p.server = &http.Server{Handler: p.count(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := p.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			say("proxy: %v", err)
		}
	}()
	return p, nil
}

func (p *countingProxy) close() { _ = p.server.Close() }

func (p *countingProxy) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/") && r.URL.Path != "/v2/" && !benchPush(r) {
			now := time.Now()
			p.mu.Lock()
			p.counts[r.Method+" "+faultproxy.Kind(r.URL.Path)]++
			p.perSecond[now.Unix()]++
			if repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/"); ok && r.Method == http.MethodHead {
				p.heads[repo] = append(p.heads[repo], now)
			}
			if repo := repoOf(r.URL.Path); repo != "" {
				p.requests[repo] = append(p.requests[repo], now)
				if p.byRepo == nil {
					p.byRepo = map[string]int64{}
				}
				p.byRepo[r.Method+" "+faultproxy.Kind(r.URL.Path)+" "+repo]++
			}
			p.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// observe notes the first time a digest is served for a manifest tag.
func (p *countingProxy) observe(resp *http.Response) error {
	req := resp.Request
	if benchPush(req) {
		return nil
	}
	if resp.StatusCode >= 400 {
		p.mu.Lock()
		p.errs++
		p.mu.Unlock()
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(req.URL.Path, "/manifests/") {
		return nil
	}
	digest := resp.Header.Get("Docker-Content-Digest")
	if digest == "" {
		return nil
	}
	key := strings.TrimPrefix(req.URL.Path, "/v2/") + "@" + digest
	now := time.Now()
	p.mu.Lock()
	if _, ok := p.firstSeen[key]; !ok {
		p.firstSeen[key] = now
	}
	p.mu.Unlock()
	return nil
}

// seen returns when the proxy first served digest for repo:tag.
func (p *countingProxy) seen(repoPath, tag, digest string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.firstSeen[repoPath+"/manifests/"+tag+"@"+digest]
	return t, ok
}

// errors is the number of registry answers ≥ 400 so far.
func (p *countingProxy) errors() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errs
}

// allHeadedSince returns when every repository in repos had had a HEAD
// at or after from (the zero time if one has not).
func (p *countingProxy) allHeadedSince(repos []string, from time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, repo := range repos {
		hs := p.heads[repo]
		i := sort.Search(len(hs), func(i int) bool { return !hs[i].Before(from) })
		if i == len(hs) {
			return time.Time{}
		}
		if hs[i].After(last) {
			last = hs[i]
		}
	}
	return last
}

// repoOf is the repository path of a /v2/<name>/{manifests,tags,blobs}/…
// request ("" for other paths).
func repoOf(path string) string {
	rest := strings.TrimPrefix(path, "/v2/")
	for _, k := range []string{"/manifests/", "/tags/", "/blobs/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// requestsBetween counts the registry requests for repos at or after from
// and before to.
func (p *countingProxy) requestsBetween(repos []string, from, to time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, repo := range repos {
		rs := p.requests[repo]
		i := sort.Search(len(rs), func(i int) bool { return !rs[i].Before(from) })
		j := sort.Search(len(rs), func(i int) bool { return !rs[i].Before(to) })
		n += int64(j - i)
	}
	return n
}

// countFor is the requests of one method and kind ("GET", "blobs") for
// one repository so far.
func (p *countingProxy) countFor(method, kind, repo string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byRepo[method+" "+kind+" "+repo]
}

// kindsFor copies one repository's counters, keyed by method and kind
// ("GET blobs").
func (p *countingProxy) kindsFor(repo string) map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int64{}
	for k, v := range p.byRepo {
		if kind, ok := strings.CutSuffix(k, " "+repo); ok {
			out[kind] = v
		}
	}
	return out
}

// snapshot copies the counters.
func (p *countingProxy) snapshot() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// maxPerSecond is the busiest second in [from, to), and the mean rate.
func (p *countingProxy) maxPerSecond(from, to time.Time) (peak int64, mean float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total int64
	for s := from.Unix(); s < to.Unix(); s++ {
		n := p.perSecond[s]
		total += n
		peak = max(peak, n)
	}
	if secs := to.Sub(from).Seconds(); secs > 0 {
		mean = float64(total) / secs
	}
	return peak, mean
}

func delta(after, before map[string]int64, key string) int64 { return after[key] - before[key] }
