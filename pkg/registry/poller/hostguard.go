package poller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// HostGuard is an http.RoundTripper that keeps cvmanager a polite registry
// client, per registry host:
//
//   - a token bucket bounds the request rate; requests waiting for it are
//     served by lane (registry.WithLane): urgent (triggers, webhooks, push
//     re-checks), then scheduled polls, then background reads (provenance,
//     signatures), and polls and background reads leave a reserve of the
//     burst to the lanes ahead, so a background flood cannot delay a
//     trigger (lanes.go);
//   - a 429 closes the host until its Retry-After (seconds or HTTP date) has
//     passed, never shorter; 5xx answers and transport errors back off
//     exponentially up to MaxBackoff;
//   - while a host is closed, requests to it fail at once without touching
//     the network, so workers never wait on it and CVs on other hosts keep
//     their schedule;
//   - at most MaxInFlight requests per host are outstanding: a registry that
//     accepts connections but answers slowly can hold that many workers,
//     never all of them.
//
// It also counts requests by host, method and code, times them, and reads
// Docker Hub's ratelimit-limit / ratelimit-remaining headers into gauges.
type HostGuard struct {
	next       http.RoundTripper
	qps        rate.Limit
	burst      int
	maxWait    time.Duration
	maxBackoff time.Duration
	inFlight   int
	clock      clock.Clock
	metrics    *guardMetrics

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	bucket     *laneBucket
	closedTill time.Time
	reason     string
	backoff    time.Duration
	// slots holds one token per outstanding request.
	slots chan struct{}
}

// ErrHostClosed reports a host that is rate limited or backing off, or
// whose request budget in this controller is spent for now (Budget).
type ErrHostClosed struct {
	Host   string
	Until  time.Time
	Reason string
	// Budget says the registry did nothing wrong: this controller's own
	// budget for the host (--registry-qps) has no token for the request
	// in time. Its poll is pacing to retry soon, not a registry fault.
	Budget bool
}

// DeferredByBudget reports whether err is this controller's own request
// budget deferring a request (ErrHostClosed with Budget), and when a token
// is expected: the request may be sent again then, it told the registry
// nothing.
func DeferredByBudget(err error) (until time.Time, ok bool) {
	var closed *ErrHostClosed
	if !errors.As(err, &closed) || !closed.Budget {
		return time.Time{}, false
	}
	return closed.Until, true
}

func (e *ErrHostClosed) Error() string {
	return fmt.Sprintf("registry %s: %s; next request after %s", e.Host, e.Reason, e.Until.UTC().Format(time.RFC3339))
}

// The per-host budget's defaults (--registry-qps, --registry-burst), also
// used when a caller gives none: a zero rate would close every host for
// ever.
//
// The rate is Docker Hub etiquette: 5 requests a second, 18,000 an hour,
// and its pull limit counts the manifest GETs among them. The burst is
// sized from the trigger API's: --trigger-rate's default admits 21 calls
// back to back (a CI job deploying 20 services), and a triggered new digest
// nobody announced costs 3 requests (the tag's HEAD, the tag list, the new
// version tag's HEAD), so one burst of triggers needs 63 tokens. At a burst
// of 20 the last of 20 such triggers waited (60 − 20) / 5 = 8 s for the
// budget (bench/results/2026-12-07T1155-push.md). 64 requests at once are
// far below the abuse limits registries publish (Docker Hub: thousands a
// minute); the sustained rate, which those limits and the pull limit
// measure, stays 5 a second.
const (
	DefaultHostQPS   = 5
	DefaultHostBurst = 64
	// MaxInFlight bounds concurrent requests to one host. Two keep a
	// healthy registry busy (requests take milliseconds) while leaving the
	// other workers free when one host hangs.
	MaxInFlight = 2
)

// NewHostGuard wraps next. qps/burst bound each host (defaults when ≤ 0);
// reg may be nil.
func NewHostGuard(next http.RoundTripper, qps float64, burst int, reg prometheus.Registerer) *HostGuard {
	if qps <= 0 {
		qps = DefaultHostQPS
	}
	if burst <= 0 {
		burst = DefaultHostBurst
	}
	return &HostGuard{
		next: next, qps: rate.Limit(qps), burst: burst, maxWait: 2 * time.Second, maxBackoff: 5 * time.Minute, inFlight: MaxInFlight,
		clock: clock.RealClock{}, metrics: newGuardMetrics(reg), hosts: map[string]*hostState{},
	}
}

// RoundTrip implements http.RoundTripper.
//
// State is kept per scheme and host: a client probing HTTPS before falling
// back to plain HTTP (insecure local registries) must not have the failed
// probe close the HTTP endpoint.
func (g *HostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	endpoint := req.URL.Scheme + "://" + host
	if err := g.admit(req.Context(), endpoint, registry.LaneOf(req.Context()), originOf(req, g.clock.Now())); err != nil {
		return nil, err
	}
	release, err := g.acquire(endpoint)
	if err != nil {
		return nil, err
	}
	defer release()
	start := g.clock.Now()
	resp, err := g.next.RoundTrip(req)
	g.metrics.observe(host, req.Method, resp, err, g.clock.Now().Sub(start))
	if err != nil && req.Context().Err() != nil {
		// The caller gave up (a deadline, or the HTTP ping that lost
		// go-containerregistry's race between its two attempts): that
		// says nothing of the registry, and closing the host for it
		// failed every other CV's request for a second.
		return nil, err
	}
	g.record(endpoint, resp, err)
	return resp, err
}

// admit refuses a closed host and spends a token in the request's lane,
// waiting at most maxWait for one (a longer wait would hold a worker that
// other CVs need).
func (g *HostGuard) admit(ctx context.Context, host string, lane registry.Lane, origin time.Time) error {
	g.mu.Lock()
	st := g.state(host)
	if now := g.clock.Now(); now.Before(st.closedTill) {
		err := &ErrHostClosed{Host: host, Until: st.closedTill, Reason: st.reason}
		g.mu.Unlock()
		return err
	}
	g.mu.Unlock()
	return g.waitForBudget(ctx, host, lane, origin)
}

// originOf is when the work req serves began (registry.WithOrigin), or now:
// work with no origin is served in arrival order.
func originOf(req *http.Request, now time.Time) time.Time {
	if t, ok := registry.OriginOf(req.Context()); ok {
		return t
	}
	return now
}

// acquire takes one of the host's in-flight slots, waiting at most maxWait:
// a host whose slots stay full is slow, and its CVs fail this poll rather
// than hold a worker. The slot is held until the response headers arrive
// (the caller reads the body afterwards, outside the guard).
func (g *HostGuard) acquire(host string) (release func(), err error) {
	g.mu.Lock()
	slots := g.state(host).slots
	g.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	default:
	}
	timer := time.NewTimer(g.maxWait)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-timer.C:
		return nil, fmt.Errorf("registry %s is slow: %d requests in flight for over %s; this poll is skipped", host, cap(slots), g.maxWait)
	}
}

func (g *HostGuard) state(host string) *hostState {
	st, ok := g.hosts[host]
	if !ok {
		st = &hostState{bucket: newLaneBucket(float64(g.qps), g.burst, g.clock.Now()), slots: make(chan struct{}, g.inFlight)}
		g.hosts[host] = st
	}
	return st
}

// record opens or closes the host from the answer.
func (g *HostGuard) record(host string, resp *http.Response, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.state(host)
	now := g.clock.Now()
	switch {
	case err == nil && resp.StatusCode == http.StatusTooManyRequests:
		until := now.Add(retryAfter(resp.Header.Get("Retry-After"), now, time.Minute))
		if until.After(st.closedTill) {
			st.closedTill = until
		}
		st.reason = "rate limited (429)"
	case err != nil || resp.StatusCode >= 500:
		st.backoff = min(max(2*st.backoff, time.Second), g.maxBackoff)
		st.closedTill = now.Add(st.backoff)
		st.reason = fmt.Sprintf("backing off %s after %s", st.backoff, failure(resp, err))
	default:
		st.backoff = 0
	}
}

// retryAfter parses seconds or an HTTP date; without a usable value it
// assumes fallback rather than hammering the registry again at once.
func retryAfter(value string, now time.Time, fallback time.Duration) time.Duration {
	value = strings.TrimSpace(value)
	if secs, err := strconv.Atoi(value); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return fallback
}

func failure(resp *http.Response, err error) string {
	if err != nil {
		return "a transport error"
	}
	return resp.Status
}

type guardMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	limit     *prometheus.GaugeVec
	remaining *prometheus.GaugeVec
	// budgetWait is the time a request waited for its host's budget, by lane.
	budgetWait *prometheus.HistogramVec
}

func newGuardMetrics(reg prometheus.Registerer) *guardMetrics {
	m := &guardMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_registry_requests_total", Help: "Registry requests by host, method and status code.",
		}, []string{"host", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvmanager_registry_request_duration_seconds", Help: "Registry request latency.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 8),
		}, []string{"host", "method"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvmanager_registry_ratelimit_limit", Help: "Pull limit the registry reports (ratelimit-limit).",
		}, []string{"host"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvmanager_registry_ratelimit_remaining", Help: "Pulls left the registry reports (ratelimit-remaining).",
		}, []string{"host"}),
		budgetWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cvmanager_registry_budget_wait_seconds",
			Help:    "Time a registry request waited for its host's request budget, by lane: urgent, scheduled, background.",
			Buckets: []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2},
		}, []string{"lane"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.limit, m.remaining, m.budgetWait)
	}
	return m
}

func (m *guardMetrics) observe(host, method string, resp *http.Response, err error, took time.Duration) {
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
		setRateLimit(m.limit, host, resp.Header.Get("ratelimit-limit"))
		setRateLimit(m.remaining, host, resp.Header.Get("ratelimit-remaining"))
	}
	m.requests.WithLabelValues(host, method, code).Inc()
	m.duration.WithLabelValues(host, method).Observe(took.Seconds())
}

// setRateLimit reads "100;w=21600" style values.
func setRateLimit(g *prometheus.GaugeVec, host, value string) {
	if value == "" {
		return
	}
	n, _, _ := strings.Cut(value, ";")
	if v, err := strconv.ParseFloat(strings.TrimSpace(n), 64); err == nil {
		g.WithLabelValues(host).Set(v)
	}
}
