package trigger

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

// repoLimits is the webhook budget: one token bucket per source and
// repository. One busy repository, or one chatty source, cannot use up the
// budget of the others, and noise never reaches it (see Webhooks.act).
type repoLimits struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxBuckets bounds the map: buckets exist only for repositories some CV
// follows, so this is reached only with that many followed repositories;
// then idle (full) buckets are dropped, which forgets nothing they hold.
const maxBuckets = 10000

func newRepoLimits(requestsPerSecond float64) *repoLimits {
	return &repoLimits{rate: rate.Limit(requestsPerSecond), burst: int(requestsPerSecond) + 1, buckets: map[string]*rate.Limiter{}}
}

// allow spends one token of source's bucket of each repository, all or
// none. When one is empty it returns how long until all would have one.
func (l *repoLimits) allow(source string, repos []string) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	reservations := make([]*rate.Reservation, 0, len(repos))
	var wait time.Duration
	for _, repo := range repos {
		r := l.bucket(source+"|"+repo).ReserveN(now, 1)
		reservations = append(reservations, r)
		if !r.OK() {
			wait = max(wait, time.Hour) // a zero rate never refills
			continue
		}
		wait = max(wait, r.DelayFrom(now))
	}
	if wait == 0 {
		return 0, true
	}
	for _, r := range reservations {
		r.CancelAt(now)
	}
	return wait, false
}

func (l *repoLimits) bucket(key string) *rate.Limiter {
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if len(l.buckets) >= maxBuckets {
		for k, b := range l.buckets {
			if b.Tokens() >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
	}
	b := rate.NewLimiter(l.rate, l.burst)
	l.buckets[key] = b
	return b
}

// tooManyFor answers 429 with the whole seconds after which the sender's
// retry will be accepted (at least one).
func tooManyFor(w http.ResponseWriter, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	httpError(w, http.StatusTooManyRequests, "too many deliveries for this repository, retry in "+strconv.Itoa(secs)+" s")
}

// Outcomes of a webhook delivery, the values of the outcome label.
const (
	outcomeIgnored   = "ignored"   // names no followed repo:tag: 202, no cost
	outcomeTriggered = "triggered" // polls recorded: 202
	outcomeLimited   = "limited"   // over the repository's budget: 429
	outcomeInvalid   = "invalid"   // unreadable payload: 400
)

type webhookMetrics struct {
	deliveries *prometheus.CounterVec
}

func newWebhookMetrics() *webhookMetrics {
	return &webhookMetrics{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cvmanager_webhook_deliveries_total",
		Help: "Authenticated registry webhook deliveries by source and outcome: ignored, triggered, limited, invalid.",
	}, []string{"source", "outcome"})}
}

func (m *webhookMetrics) outcome(source, outcome string) {
	m.deliveries.WithLabelValues(source, outcome).Inc()
}

// MustRegister registers the webhook metrics
// (cvmanager_webhook_deliveries_total) on reg.
func (h *Webhooks) MustRegister(reg prometheus.Registerer) {
	reg.MustRegister(h.metrics.deliveries)
}

// Deliveries counts the authenticated deliveries of source that ended with
// outcome ("ignored", "triggered", "limited", "invalid"); tests and the
// bench read it.
func (h *Webhooks) Deliveries(source, outcome string) int {
	var m dto.Metric
	if err := h.metrics.deliveries.WithLabelValues(source, outcome).Write(&m); err != nil {
		return 0
	}
	return int(m.GetCounter().GetValue())
}
