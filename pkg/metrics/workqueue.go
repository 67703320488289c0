package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// wqProvider is process-wide because client-go accepts one workqueue metrics
// provider per process; its collectors are registered on every Metrics
// registry, so each /metrics shows the queue series.
var wqProvider = newWorkqueueProvider()

func newWorkqueueProvider() *workqueueProvider {
	return &workqueueProvider{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvmanager_workqueue_depth", Help: "Current depth of the workqueue.",
		}, []string{"name"}),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_workqueue_adds_total", Help: "Adds handled by the workqueue.",
		}, []string{"name"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvmanager_workqueue_queue_duration_seconds", Help: "Time an item waits in the queue.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 10, 8),
		}, []string{"name"}),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvmanager_workqueue_work_duration_seconds", Help: "Time processing an item.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 10, 8),
		}, []string{"name"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvmanager_workqueue_unfinished_work_seconds", Help: "Seconds of work in progress.",
		}, []string{"name"}),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cvmanager_workqueue_longest_running_processor_seconds", Help: "Longest running item.",
		}, []string{"name"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvmanager_workqueue_retries_total", Help: "Retries handled by the workqueue.",
		}, []string{"name"}),
	}
}

func (p *workqueueProvider) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.depth, p.adds, p.latency, p.work, p.unfinished, p.longest, p.retries}
}

// workqueueProvider adapts client-go's workqueue metrics to Prometheus.
type workqueueProvider struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, work              *prometheus.HistogramVec
}

func (p *workqueueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(name)
}
func (p *workqueueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name)
}
func (p *workqueueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.latency.WithLabelValues(name)
}
func (p *workqueueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.work.WithLabelValues(name)
}
func (p *workqueueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.unfinished.WithLabelValues(name)
}
func (p *workqueueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.longest.WithLabelValues(name)
}
func (p *workqueueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name)
}
