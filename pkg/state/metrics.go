package state

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExportMetrics are the state daemon's counters, served on its /metrics:
//
//   - cvmanager_state_exports_total{result="success|error"}: exports done;
//   - cvmanager_state_export_duration_seconds: how long each took;
//   - cvmanager_state_last_export_success_timestamp_seconds: when the last
//     successful export finished (alert when it is older than a few
//     intervals);
//   - cvmanager_state_exported_objects{kind="containerversions|workloads"}:
//     what the last successful export wrote.
type ExportMetrics struct {
	exports     *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	objects     *prometheus.GaugeVec
}

// NewExportMetrics registers the export metrics in reg.
func NewExportMetrics(reg prometheus.Registerer) *ExportMetrics {
	m := &ExportMetrics{
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cvmanager_state_exports_total",
			Help: "State exports, by result (success or error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cvmanager_state_export_duration_seconds",
			Help: "Duration of each state export.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cvmanager_state_last_export_success_timestamp_seconds",
			Help: "Unix time the last successful state export finished."}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cvmanager_state_exported_objects",
			Help: "Objects the last successful export wrote, by kind (containerversions, workloads)."}, []string{"kind"}),
	}
	reg.MustRegister(m.exports, m.duration, m.lastSuccess, m.objects)
	// Both results exist from the start, so rate() and absent() work.
	m.exports.WithLabelValues("success")
	m.exports.WithLabelValues("error")
	return m
}

// observe records one export's outcome; a nil receiver records nothing.
func (m *ExportMetrics) observe(res ExportResult, took time.Duration, err error, now time.Time) {
	if m == nil {
		return
	}
	m.duration.Observe(took.Seconds())
	if err != nil {
		m.exports.WithLabelValues("error").Inc()
		return
	}
	m.exports.WithLabelValues("success").Inc()
	m.lastSuccess.Set(float64(now.Unix()))
	m.objects.WithLabelValues("containerversions").Set(float64(res.CVs))
	m.objects.WithLabelValues("workloads").Set(float64(res.Workloads))
}
