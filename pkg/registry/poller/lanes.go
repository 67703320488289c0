package poller

import (
	"context"
	"time"

	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// laneBucket is one host's token bucket with a queue per lane. A request
// takes a token at once when its lane's threshold is met and nobody of its
// lane or a more urgent one waits; otherwise it queues, and each token that
// refills goes to the oldest waiter of the most urgent lane whose threshold
// is met. Thresholds keep a reserve of the burst for the more urgent lanes:
// scheduled polls leave a quarter of the burst, background reads half of
// it, so a round of triggers finds tokens even while polls and provenance
// reads keep the budget busy. The rate and burst are the host's, whatever
// the mix: the reserve only decides who may spend the tokens there are.
// Called with the guard's mutex held, except the dispatch goroutine, which
// takes it.
type laneBucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	queues [3]laneQueue // one per lane, most urgent first
	// timerSet: a dispatch is scheduled for the next token.
	timerSet bool
}

type laneQueue []*laneWaiter

type laneWaiter struct {
	ready   chan struct{}
	granted bool
	// origin orders the waiters of one lane: oldest work first
	// (registry.WithOrigin).
	origin time.Time
}

func newLaneBucket(rate float64, burst int, now time.Time) *laneBucket {
	return &laneBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// threshold is the tokens lane l needs to find before it spends one.
func (b *laneBucket) threshold(l registry.Lane) float64 {
	switch l {
	case registry.LaneScheduled:
		return 1 + float64(int(b.burst)/4)
	case registry.LaneBackground:
		return 1 + float64(int(b.burst)/2)
	default:
		return 1
	}
}

func (b *laneBucket) refill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
}

// ahead counts the waiters that go before a new request of lane l whose
// work began at origin: every waiter of a more urgent lane, and those of
// its own lane whose work began no later.
func (b *laneBucket) ahead(l registry.Lane, origin time.Time) int {
	n := 0
	for i := 0; i < int(l)-1; i++ {
		n += len(b.queues[i])
	}
	return n + b.queues[l-1].olderThan(origin)
}

// olderThan is the number of waiters whose work began no later than
// origin: the position a new waiter of that origin takes in the queue.
func (q laneQueue) olderThan(origin time.Time) int {
	n := 0
	for n < len(q) && !q[n].origin.After(origin) {
		n++
	}
	return n
}

// take grants a token at once when it can; otherwise it returns the
// expected wait of a request of lane l, which queues behind the waiters
// ahead of it.
func (b *laneBucket) take(l registry.Lane, origin, now time.Time) (granted bool, wait time.Duration) {
	b.refill(now)
	ahead := b.ahead(l, origin)
	if ahead == 0 && b.tokens >= b.threshold(l) {
		b.tokens--
		return true, 0
	}
	need := float64(ahead) + b.threshold(l) - b.tokens
	return false, time.Duration(need / b.rate * float64(time.Second))
}

// enqueue queues a request of lane l behind the waiters of its lane whose
// work began no later than origin.
func (b *laneBucket) enqueue(l registry.Lane, origin time.Time) *laneWaiter {
	w := &laneWaiter{ready: make(chan struct{}), origin: origin}
	q := b.queues[l-1]
	at := q.olderThan(origin)
	b.queues[l-1] = append(q[:at:at], append(laneQueue{w}, q[at:]...)...)
	return w
}

// remove takes a waiter that gave up out of its queue.
func (b *laneBucket) remove(w *laneWaiter) {
	for i, q := range b.queues {
		for j, x := range q {
			if x == w {
				b.queues[i] = append(q[:j:j], q[j+1:]...)
				return
			}
		}
	}
}

// dispatch hands the tokens there are to the waiters, most urgent lane
// first, and says how long until the next token when some still wait.
func (b *laneBucket) dispatch(now time.Time) (next time.Duration, more bool) {
	b.refill(now)
	for i := range b.queues {
		lane := registry.Lane(i + 1)
		for len(b.queues[i]) > 0 && b.tokens >= b.threshold(lane) {
			w := b.queues[i][0]
			b.queues[i] = b.queues[i][1:]
			b.tokens--
			w.granted = true
			close(w.ready)
		}
		if len(b.queues[i]) > 0 {
			// This lane waits: lanes after it wait behind it.
			return time.Duration((b.threshold(lane) - b.tokens) / b.rate * float64(time.Second)), true
		}
	}
	return 0, false
}

// backgroundWaits is how many times maxWait a background read may wait:
// it holds no worker (provenance reads run on their own), it is served
// last, and a refused read is remembered as empty.
//
// An urgent request may wait as long: someone waits for it, and a refusal
// only sends it to the back of the urgent queue on its re-check (the bench
// saw 20 back-to-back triggers on one host refused and retried in turn, 5
// of them not patched within a minute). Scheduled polls keep maxWait: the
// next interval retries them.
const backgroundWaits = 5

// waitForBudget spends a token of endpoint's bucket in the request's lane,
// waiting at most maxWait (background and urgent: backgroundWaits times
// that); a wait that would be longer is refused at once, as before lanes
// (it would hold a worker that other CVs need). A request whose caller
// gives up while it waits leaves the queue without spending a token.
func (g *HostGuard) waitForBudget(ctx context.Context, endpoint string, lane registry.Lane, origin time.Time) error {
	limit := g.maxWait
	if lane == registry.LaneBackground || lane == registry.LaneUrgent {
		limit *= backgroundWaits
	}
	g.mu.Lock()
	st := g.state(endpoint)
	now := g.clock.Now()
	granted, wait := st.bucket.take(lane, origin, now)
	if granted {
		g.mu.Unlock()
		g.metrics.budgetWait.WithLabelValues(lane.String()).Observe(0)
		return nil
	}
	if wait > limit {
		g.mu.Unlock()
		return &ErrHostClosed{Host: endpoint, Until: now.Add(wait), Reason: "request budget exhausted", Budget: true}
	}
	w := st.bucket.enqueue(lane, origin)
	g.scheduleDispatch(st)
	g.mu.Unlock()

	timer := g.clock.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-w.ready:
	case <-timer.C():
		if g.leaveQueue(st, w) {
			return &ErrHostClosed{Host: endpoint, Until: g.clock.Now(), Reason: "request budget exhausted", Budget: true}
		}
	case <-ctx.Done():
		if g.leaveQueue(st, w) {
			return ctx.Err()
		}
	}
	g.metrics.budgetWait.WithLabelValues(lane.String()).Observe(g.clock.Since(now).Seconds())
	return nil
}

// leaveQueue takes a waiter that gives up out of its queue; false means
// it was granted a token meanwhile, which it then spends.
func (g *HostGuard) leaveQueue(st *hostState, w *laneWaiter) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		return false
	}
	st.bucket.remove(w)
	return true
}

// scheduleDispatch starts, unless one runs, the goroutine that hands out
// tokens as they refill. Called with g.mu held.
func (g *HostGuard) scheduleDispatch(st *hostState) {
	if st.bucket.timerSet {
		return
	}
	st.bucket.timerSet = true
	go g.dispatchLoop(st, g.clock)
}

func (g *HostGuard) dispatchLoop(st *hostState, clk clock.Clock) {
	for {
		g.mu.Lock()
		next, more := st.bucket.dispatch(clk.Now())
		if !more {
			st.bucket.timerSet = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		<-clk.After(max(next, time.Millisecond))
	}
}
