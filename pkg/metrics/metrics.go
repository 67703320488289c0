// Package metrics owns cvmanager's Prometheus registry. Nothing is registered
// on the global default registry, so tests can build as many controllers as
// they like and /metrics shows exactly cvmanager's series.
//
// Series (all prefixed cvmanager_):
//
//	rollouts_total{outcome}                 finished rollouts: Success, Failed, RolledBack
//	rollout_duration_seconds{outcome}       start of a rollout to its end
//	syncers                                 ContainerVersions with a live syncer
//	polls_total{result}                     registry polls: unchanged, changed, error, deferred
//	poll_duration_seconds                   time to resolve a tag (after dedup)
//	authz_checks_total{answer}              author permission checks: allowed, denied (a review sent), cached
//	authz_refusals_total                    ContainerVersions refused for their author's rights (per report)
//	leader                                  1 while this replica holds the leader lease (LeaderGauge, registered by run)
//	containerversion_status{namespace,name,status}        1 for each CV's currStatus (pkg/dashboard, on scrape)
//	containerversion_condition{namespace,name,type,reason} 1 per True condition of a CV (pkg/dashboard)
//	containerversion_rollout_deadline_timestamp_seconds{namespace,name}  when the rollout in progress times out
//	dora_{deployments,failures,deployments_per_day,lead_time_seconds,deploy_duration_seconds,change_failure_ratio,time_to_restore_seconds}{namespace,cv}
//	                                        DORA delivery figures of the last 7 days per CV (pkg/dashboard, pkg/dora)
//	dora_namespace_*{namespace}             the same figures pooled per namespace
//	signature_verifications_total{result}   image signature checks before a deploy: verified, refused, audited
//	                                        (Audit mode let an unverified image through), error (registry unreadable)
//	writeback_total{state}                  git write-backs finished: Written, Failed
//	writeback_duration_seconds{state}       submit to the commit pushed (or the failure)
//	workqueue_*                             client-go workqueue metrics (depth, adds, latency, ...)
//	registry_requests_total{host,method,code}    registered by pkg/registry/poller on the same registry
//	registry_request_duration_seconds{host,method}
//	registry_ratelimit_limit{host}          ratelimit-limit a registry reports (Docker Hub)
//	registry_ratelimit_remaining{host}      ratelimit-remaining a registry reports
//	registry_budget_wait_seconds{lane}      time a request waited for its host's budget: urgent, scheduled, background
//	webhook_deliveries_total{source,outcome} webhook deliveries: ignored, triggered, limited, invalid (pkg/trigger)
//
// docs/metrics.md is the user's list; test/faults checks it against a
// real scrape.
package metrics

import (
	"sync"
	"time"

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
	// WriteBacks and WriteBackDuration count git write-backs by state
	// (Written, Failed) and time them from submit (ObserveWriteBack).
	WriteBacks        *prometheus.CounterVec
	WriteBackDuration *prometheus.HistogramVec
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
			Name: "cvmanager_polls_total", Help: "Registry polls by result: unchanged, changed, error, deferred (paced by the request budget, tried again soon).",
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
		WriteBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_writeback_total", Help: "Git write-backs finished, by state: Written, Failed.",
		}, []string{"state"}),
		WriteBackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvmanager_writeback_duration_seconds", Help: "Time from a write-back's submit to its commit pushed (or its failure).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}, []string{"state"}),
	}
	m.Registry.MustRegister(m.WriteBacks, m.WriteBackDuration, m.RolloutsTotal, m.RolloutDuration, m.Syncers, m.PollsTotal, m.PollDuration, m.AuthzChecks, m.AuthzRefusals,
		m.SignatureVerifications,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every result starts at zero, so an alert on refusals sees a series
	// before the first one happens.
	for _, result := range []string{"verified", "refused", "audited", "error"} {
		m.SignatureVerifications.WithLabelValues(result)
	}
	workqueueOnce.Do(func() { workqueue.SetProvider(wqProvider) })
	m.Registry.MustRegister(wqProvider.collectors()...)
	return m
}

var workqueueOnce sync.Once

// LeaderGauge is cvmanager_leader: 1 while this replica holds the leader
// lease. Summed over replicas it should be 1; 0 for long means no replica
// acts (the "leader lost" alert).
func (m *Metrics) LeaderGauge(isLeader func() bool) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cvmanager_leader", Help: "1 while this replica holds the leader lease, else 0.",
	}, func() float64 {
		if isLeader() {
			return 1
		}
		return 0
	})
}

// ObserveWriteBack records one finished git write-back (the writer's
// Config.Observe).
func (m *Metrics) ObserveWriteBack(state string, sinceSubmit time.Duration) {
	m.WriteBacks.WithLabelValues(state).Inc()
	m.WriteBackDuration.WithLabelValues(state).Observe(sinceSubmit.Seconds())
}
