package e2e

import (
	dto "github.com/prometheus/client_model/go"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/metrics"
)

// metricsCapture gives a test access to a controller's metrics.
type metricsCapture struct{ m *metrics.Metrics }

func newMetricsCapture() *metricsCapture { return &metricsCapture{m: metrics.New()} }

func (c *metricsCapture) use(o *controller.Options) { o.Metrics = c.m }

func (c *metricsCapture) syncers() float64 {
	var out dto.Metric
	_ = c.m.Syncers.Write(&out)
	return out.GetGauge().GetValue()
}
