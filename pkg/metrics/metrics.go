// Package metrics owns cvmanager's Prometheus registry. Nothing is registered
// on the global default registry, so tests can build as many controllers as
// they like and /metrics shows exactly cvmanager's series.
//
// Series (all prefixed cvmanager_):
//
//	rollouts_total{outcome}                 finished rollouts: Success, Failed, RolledBack
//	rollout_duration_seconds{outcome}       start of a rollout to its end
//	syncers                                 ContainerVersions with a live syncer
//	polls_total{result}                     registry polls: unchanged, changed, error
//	poll_duration_seconds                   time to resolve a tag (after dedup)
//	authz_checks_total{answer}              author permission checks: allowed, denied (a review sent), cached
//	authz_refusals_total                    ContainerVersions refused for their author's rights (per report)
//	signature_verifications_total{result}   image signature checks before a deploy: verified, refused, audited
//	                                        (Audit mode let an unverified image through), error (registry unreadable)
//	workqueue_*                             client-go workqueue metrics (depth, adds, latency, ...)
//	registry_*                              registered by pkg/registry on the same registry
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/util/workqueue"
)

// Metrics holds the controller's collectors and their registry.
type Metrics struct {
	Registry        *prometheus.Registry
	RolloutsTotal   *prometheus.CounterVec
	RolloutDuration *prometheus.HistogramVec
	Syncers         prometheus.Gauge
	PollsTotal      *prometheus.CounterVec
	PollDuration    prometheus.Histogram
	AuthzChecks     *prometheus.CounterVec
	AuthzRefusals   prometheus.Counter
	// SignatureVerifications counts signature checks by result: verified,
	// refused, audited, error.
	SignatureVerifications *prometheus.CounterVec
}

// New creates the collectors on a fresh registry, with Go and process
// collectors so memory and goroutines are visible next to cvmanager's series.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		RolloutsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_rollouts_total", Help: "Finished rollouts by outcome.",
		}, []string{"outcome"}),
		RolloutDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cvmanager_rollout_duration_seconds",
			Help:    "Time from the start of a rollout to its end.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"outcome"}),
		Syncers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cvmanager_syncers", Help: "ContainerVersions with a live syncer.",
		}),
		PollsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_polls_total", Help: "Registry polls by result: unchanged, changed, error.",
		}, []string{"result"}),
		PollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cvmanager_poll_duration_seconds", Help: "Time to resolve a tag, after request dedup.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		AuthzChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_authz_checks_total",
			Help: "Checks of a ContainerVersion author's permissions: allowed or denied by a review sent, or answered from the cache.",
		}, []string{"answer"}),
		AuthzRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cvmanager_authz_refusals_total", Help: "Refusals reported because a ContainerVersion's author lacks permissions.",
		}),
		SignatureVerifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_signature_verifications_total",
			Help: "Image signature checks before a deploy by result: verified, refused, audited (Audit mode let it through), error.",
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.RolloutsTotal, m.RolloutDuration, m.Syncers, m.PollsTotal, m.PollDuration, m.AuthzChecks, m.AuthzRefusals,
		m.SignatureVerifications,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	workqueueOnce.Do(func() { workqueue.SetProvider(wqProvider) })
	m.Registry.MustRegister(wqProvider.collectors()...)
	return m
}

var workqueueOnce sync.Once
