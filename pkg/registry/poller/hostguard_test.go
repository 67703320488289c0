package poller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHostGuardHonoursRetryAfterPerHost(t *testing.T) {
	var limitedHits, healthyHits atomic.Int64
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limitedHits.Add(1)
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer limited.Close()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		healthyHits.Add(1)
		w.Header().Set("ratelimit-limit", "100;w=21600")
		w.Header().Set("ratelimit-remaining", "97;w=21600")
	}))
	defer healthy.Close()

	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	guard := NewHostGuard(http.DefaultTransport, 1000, 1000, reg)
	guard.clock = clock
	client := &http.Client{Transport: guard}

	resp, err := client.Get(limited.URL + "/v2/")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, elapsed := range []time.Duration{0, time.Second, 4900 * time.Millisecond} {
		clock.SetTime(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(elapsed))
		if _, err := client.Get(limited.URL + "/v2/"); err == nil || !strings.Contains(err.Error(), "rate limited (429)") || !strings.Contains(err.Error(), "registry http://127.0.0.1") {
			t.Errorf("at +%s: want the host closed, got %v", elapsed, err)
		}
		// The other registry is not held up at all.
		resp, err := client.Get(healthy.URL + "/v2/")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthy host at +%s: %v %v", elapsed, resp, err)
		}
		resp.Body.Close()
	}
	if got := limitedHits.Load(); got != 1 {
		t.Errorf("limited host saw %d requests before Retry-After passed, want 1", got)
	}
	clock.Step(200 * time.Millisecond) // now 5.1 s after the 429
	if resp, err := client.Get(limited.URL + "/v2/"); err != nil {
		t.Errorf("after Retry-After: %v", err)
	} else {
		resp.Body.Close()
	}
	if limitedHits.Load() != 2 || healthyHits.Load() != 3 {
		t.Errorf("hits: limited %d healthy %d", limitedHits.Load(), healthyHits.Load())
	}
	host := strings.TrimPrefix(healthy.URL, "http://")
	if v := testutil.ToFloat64(guard.metrics.remaining.WithLabelValues(host)); v != 97 {
		t.Errorf("ratelimit-remaining gauge = %v", v)
	}
	if v := testutil.ToFloat64(guard.metrics.requests.WithLabelValues(strings.TrimPrefix(limited.URL, "http://"), "GET", "429")); v != 2 {
		t.Errorf("429 counter = %v", v)
	}
}

func TestHostGuardBacksOffOn5xx(t *testing.T) {
	var hits atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	guard := NewHostGuard(http.DefaultTransport, 1000, 1000, nil)
	guard.clock = clock
	client := &http.Client{Transport: guard}
	wantGaps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for _, gap := range wantGaps {
		resp, err := client.Get(failing.URL)
		if err != nil {
			t.Fatalf("request should reach the host: %v", err)
		}
		resp.Body.Close()
		clock.Step(gap - 10*time.Millisecond)
		if _, err := client.Get(failing.URL); err == nil {
			t.Fatalf("host reopened before %s of back-off", gap)
		}
		clock.Step(20 * time.Millisecond)
	}
	if hits.Load() != 3 {
		t.Errorf("hits = %d, want 3", hits.Load())
	}
}

func TestHostGuardDefaultsAZeroBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: NewHostGuard(http.DefaultTransport, 0, 0, nil)}
	for i := 0; i < DefaultHostBurst; i++ {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatalf("request %d with an unset budget: %v", i, err)
		}
		resp.Body.Close()
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"5":                             5 * time.Second,
		"0":                             0,
		"Mon, 23 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"soon":                          time.Minute,
		"":                              time.Minute,
	}
	for in, want := range cases {
		if got := retryAfter(in, now, time.Minute); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestHostGuardCapsRequestsInFlightPerHost: a registry that never answers
// holds at most MaxInFlight requests; the next one is refused after maxWait
// and another host is served throughout.
func TestHostGuardCapsRequestsInFlightPerHost(t *testing.T) {
	hang := make(chan struct{})
	var arrived atomic.Int64
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-hang
	}))
	defer hanging.Close()
	defer close(hang)
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()
	guard := NewHostGuard(http.DefaultTransport, 1000, 1000, nil)
	guard.maxWait = 100 * time.Millisecond
	client := &http.Client{Transport: guard, Timeout: 3 * time.Second}

	for i := 0; i < MaxInFlight; i++ {
		go func() {
			if resp, err := client.Get(hanging.URL); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); arrived.Load() < MaxInFlight && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := client.Get(hanging.URL); err == nil || !strings.Contains(err.Error(), "requests in flight") {
		t.Errorf("request beyond the cap: want refused as slow, got %v", err)
	}
	if got := arrived.Load(); got != MaxInFlight {
		t.Errorf("the hanging host saw %d requests, want %d", got, MaxInFlight)
	}
	resp, err := client.Get(healthy.URL)
	if err != nil {
		t.Fatalf("healthy host while the other hangs: %v", err)
	}
	resp.Body.Close()
}

// TestCallerThatGivesUpDoesNotCloseTheHost: a request whose caller
// cancels it (a deadline, the losing attempt of a ping race) fails, but
// the host stays open: the next request reaches the registry. A real
// transport error still closes it.
func TestCallerThatGivesUpDoesNotCloseTheHost(t *testing.T) {
	var hits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			<-r.Context().Done() // the first caller gives up while it waits
		}
	}))
	defer slow.Close()
	guard := NewHostGuard(http.DefaultTransport, 1000, 1000, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, slow.URL+"/v2/", nil)
	if _, err := guard.RoundTrip(req); err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	resp, err := (&http.Client{Transport: guard}).Get(slow.URL + "/v2/")
	if err != nil {
		t.Fatalf("after a caller gave up, the host was closed: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 2 {
		t.Errorf("the registry saw %d requests, want 2", hits.Load())
	}

	slow.CloseClientConnections()
	slow.Close() // now a real transport error
	if _, err := (&http.Client{Transport: guard}).Get(slow.URL + "/v2/"); err == nil {
		t.Fatal("a closed server answered")
	}
	if _, err := (&http.Client{Transport: guard}).Get(slow.URL + "/v2/"); err == nil || !strings.Contains(err.Error(), "after a transport error") {
		t.Errorf("after a transport error the host should back off, got %v", err)
	}
}
