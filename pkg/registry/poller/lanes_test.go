package poller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// TestBackgroundFloodCannotDelayATrigger: with the host's budget spent and
// 20 background reads and 5 scheduled polls queued before it, an urgent
// request (a trigger's resolve) gets the next token, the scheduled polls
// the ones after, and the background reads only then. The budget's rate is
// unchanged: one request per token. A fake clock hands out the tokens.
func TestBackgroundFloodCannotDelayATrigger(t *testing.T) {
	var mu sync.Mutex
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served = append(served, r.Header.Get("X-Lane"))
		mu.Unlock()
	}))
	defer srv.Close()
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	guard := NewHostGuard(http.DefaultTransport, 10, 1, reg)
	guard.clock = clock
	guard.maxWait = time.Hour // of fake time: nobody gives up during the test
	client := &http.Client{Transport: guard}
	send := func(lane registry.Lane) {
		req, _ := http.NewRequestWithContext(registry.WithLane(context.Background(), lane), http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Lane", lane.String())
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(served) }
	queued := func(l registry.Lane) int {
		guard.mu.Lock()
		defer guard.mu.Unlock()
		return len(guard.hosts["http://"+srv.Listener.Addr().String()].bucket.queues[l-1])
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	send(registry.LaneScheduled) // spends the burst of one
	var wg sync.WaitGroup
	flood := func(lane registry.Lane, n int) {
		for range n {
			wg.Add(1)
			go func() { defer wg.Done(); send(lane) }()
		}
		waitFor(lane.String()+" requests to queue", func() bool { return queued(lane) == n })
	}
	flood(registry.LaneBackground, 20)
	flood(registry.LaneScheduled, 5)
	flood(registry.LaneUrgent, 1)

	// Hand out 7 tokens, one per 100 ms of fake time.
	for want := 2; want <= 8; want++ {
		waitFor("a token to be handed out", func() bool {
			if count() >= want {
				return true
			}
			clock.Step(100 * time.Millisecond)
			return false
		})
	}
	mu.Lock()
	got := append([]string(nil), served[1:8]...)
	mu.Unlock()
	want := []string{"urgent", "scheduled", "scheduled", "scheduled", "scheduled", "scheduled", "background"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order served after the flood (-want +got):\n%s", diff)
	}
	if n := queued(registry.LaneBackground); n != 19 {
		t.Errorf("%d background requests still queued, want 19", n)
	}
	// Drain the rest, then read the per-lane wait: the trigger waited
	// about one token's time (100 ms), the background reads far longer.
	waitFor("the flood to drain", func() bool {
		if count() == 27 {
			return true
		}
		clock.Step(100 * time.Millisecond)
		return false
	})
	wg.Wait()
	if n := testutil.CollectAndCount(reg, "cvmanager_registry_budget_wait_seconds"); n != 3 {
		t.Errorf("budget wait series: %d, want one per lane", n)
	}
	urgent := histogram(t, reg, "urgent")
	background := histogram(t, reg, "background")
	if urgent.count != 1 || urgent.sum > 0.3 {
		t.Errorf("urgent wait: %d requests, %.2f s in all; want one of at most ~0.1 s", urgent.count, urgent.sum)
	}
	if background.count != 20 || background.sum/20 < 0.5 {
		t.Errorf("background wait: %d requests, mean %.2f s; want 20 waiting behind the others", background.count, background.sum/20)
	}
}

type histo struct {
	count uint64
	sum   float64
}

func histogram(t *testing.T, reg *prometheus.Registry, lane string) histo {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "cvmanager_registry_budget_wait_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "lane" && l.GetValue() == lane {
					return histo{m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	return histo{}
}

// TestLaneOf: requests without a lane are scheduled polls.
func TestLaneOf(t *testing.T) {
	if got := registry.LaneOf(context.Background()); got != registry.LaneScheduled {
		t.Errorf("no lane: %s", got)
	}
	if got := registry.LaneOf(registry.WithLane(context.Background(), registry.LaneUrgent)); got != registry.LaneUrgent {
		t.Errorf("urgent: %s", got)
	}
}

// TestBurstReserveKeepsTokensForTriggers: background reads may spend the
// burst only down to half of it, scheduled polls down to a quarter, so a
// trigger arriving while they keep the budget busy is served at once.
// Spending all tokens together still takes exactly the burst.
func TestBurstReserveKeepsTokensForTriggers(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	b := newLaneBucket(5, 20, now)
	take := func(l registry.Lane) bool { ok, _ := b.take(l, now, now); return ok }
	count := func(l registry.Lane) int {
		n := 0
		for take(l) {
			n++
		}
		return n
	}
	got := []int{count(registry.LaneBackground), count(registry.LaneScheduled), count(registry.LaneUrgent)}
	if diff := cmp.Diff([]int{10, 5, 5}, got); diff != "" {
		t.Errorf("tokens spent by background, then scheduled, then urgent (-want +got):\n%s", diff)
	}
	if _, wait := b.take(registry.LaneUrgent, now, now); wait != 200*time.Millisecond {
		t.Errorf("an urgent request on an empty bucket waits %s, want one token (200 ms at 5/s)", wait)
	}
}

// TestUrgentRequestWaitsLongerThanAPoll: with the budget spent and the next
// token 3 s away (maxWait 1 s), a scheduled poll is refused at once, while
// an urgent request (someone waits for it) queues and is served when the
// token comes, instead of being refused and retried at the back.
func TestUrgentRequestWaitsLongerThanAPoll(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	guard := NewHostGuard(http.DefaultTransport, 1.0/3, 1, prometheus.NewRegistry())
	guard.clock = clock
	guard.maxWait = time.Second
	if err := guard.waitForBudget(context.Background(), "h", registry.LaneUrgent, clock.Now()); err != nil {
		t.Fatalf("the burst's token: %v", err)
	}
	if err := guard.waitForBudget(context.Background(), "h", registry.LaneScheduled, clock.Now()); err == nil {
		t.Fatal("a poll 3 s from a token was not refused")
	}
	done := make(chan error, 1)
	go func() { done <- guard.waitForBudget(context.Background(), "h", registry.LaneUrgent, clock.Now()) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		guard.mu.Lock()
		n := len(guard.hosts["h"].bucket.queues[registry.LaneUrgent-1])
		guard.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
	}
	clock.Step(3 * time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the urgent request was refused: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the urgent request was not served when the token came")
	}
}

// TestOldestWorkIsServedFirstWithinALane: with the budget spent, three
// triggers' first requests wait; the follow-up of the oldest (its tag
// list) arrives last but is served first, so that trigger finishes before
// the next ones start, instead of every trigger finishing at the end.
func TestOldestWorkIsServedFirstWithinALane(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	b := newLaneBucket(5, 1, now)
	if ok, _ := b.take(registry.LaneUrgent, now, now); !ok {
		t.Fatal("the burst's token was not granted")
	}
	trigger := func(i int) time.Time { return now.Add(time.Duration(i) * time.Millisecond) }
	second := b.enqueue(registry.LaneUrgent, trigger(2))
	third := b.enqueue(registry.LaneUrgent, trigger(3))
	if _, wait := b.take(registry.LaneUrgent, trigger(1), now); wait != 200*time.Millisecond {
		t.Errorf("the oldest trigger's follow-up waits %s, want one token (200 ms): nothing goes before it", wait)
	}
	followUp := b.enqueue(registry.LaneUrgent, trigger(1))
	var order []*laneWaiter
	for step := 1; step <= 3; step++ {
		b.dispatch(now.Add(time.Duration(step) * 200 * time.Millisecond))
		for _, w := range []*laneWaiter{followUp, second, third} {
			if w.granted && !slices.Contains(order, w) {
				order = append(order, w)
			}
		}
	}
	if want := []*laneWaiter{followUp, second, third}; !slices.Equal(order, want) {
		t.Errorf("served in the order %v, want the oldest work first %v", order, want)
	}
}

// TestWaiterThatGivesUpSpendsNoToken: a request waiting for the budget
// whose caller gives up returns at once with the caller's error and
// leaves the queue; the token that comes next goes to the next request.
func TestWaiterThatGivesUpSpendsNoToken(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	guard := NewHostGuard(http.DefaultTransport, 1.0/3, 1, prometheus.NewRegistry())
	guard.clock = clock
	if err := guard.waitForBudget(context.Background(), "h", registry.LaneUrgent, clock.Now()); err != nil {
		t.Fatalf("the burst's token: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- guard.waitForBudget(ctx, "h", registry.LaneUrgent, clock.Now()) }()
	waitQueued(t, guard, "h", registry.LaneUrgent, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the waiter that gave up returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter that gave up kept waiting")
	}
	waitQueued(t, guard, "h", registry.LaneUrgent, 0)
	clock.Step(3 * time.Second)
	guard.mu.Lock()
	granted, _ := guard.hosts["h"].bucket.take(registry.LaneUrgent, clock.Now(), clock.Now())
	guard.mu.Unlock()
	if !granted {
		t.Error("the next token was spent by the waiter that gave up")
	}
}

// waitQueued waits until n requests of lane wait for host's budget.
func waitQueued(t *testing.T, guard *HostGuard, host string, lane registry.Lane, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		guard.mu.Lock()
		queued := len(guard.hosts[host].bucket.queues[lane-1])
		guard.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", queued, n)
		}
	}
}
