package dashboard

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// DORAWindow is the window of the DORA series on /metrics.
const DORAWindow = "7d"

// doraSeries are the DORA gauges, each per CV and per namespace.
var doraSeries = []struct {
	name, help string
	value      func(DORARow) float64
}{
	{"deployments", "Successful rollouts that delivered a change in the last 7 days.", func(r DORARow) float64 { return float64(r.Deployments) }},
	{"failures", "Failed, rolled-back or aborted rollouts in the last 7 days.", func(r DORARow) float64 { return float64(r.Failures) }},
	{"deployments_per_day", "Deployment frequency: successful rollouts per day over the last 7 days.", func(r DORARow) float64 { return r.DeploymentsPerDay }},
	{"lead_time_seconds", "Median lead time for changes, image build time (org.opencontainers.image.created) to rollout finished, over the last 7 days' rollouts whose image states its build time (0 when none does).", func(r DORARow) float64 { return r.LeadTimeSeconds }},
	{"deploy_duration_seconds", "Median deploy duration, tag seen moving to rollout finished, over the last 7 days (not a lead time: it starts when cvmanager saw the change).", func(r DORARow) float64 { return r.DeployDurationSeconds }},
	{"change_failure_ratio", "Change failure rate: failed rollouts over all rollouts in the last 7 days.", func(r DORARow) float64 { return r.ChangeFailureRate }},
	{"time_to_restore_seconds", "Median time to restore, from a failed rollout's start to service restored (an automatic rollback's end or the next success), over the last 7 days.", func(r DORARow) float64 { return r.TimeToRestoreSeconds }},
}

// doraCollector computes the DORA figures when scraped, from the histories
// the activity view and /v1/cv/metrics share (read at most once a minute).
type doraCollector struct {
	h           *Handler
	perCV, perN []*prometheus.Desc
}

// DORACollector exports the delivery figures of the last 7 days as
// cvmanager_dora_* (per CV) and cvmanager_dora_namespace_* gauges.
func (h *Handler) DORACollector() prometheus.Collector {
	c := &doraCollector{h: h}
	for _, s := range doraSeries {
		c.perCV = append(c.perCV, prometheus.NewDesc("cvmanager_dora_"+s.name, s.help+" Per ContainerVersion.", []string{"namespace", "cv"}, nil))
		c.perN = append(c.perN, prometheus.NewDesc("cvmanager_dora_namespace_"+s.name, s.help+" Per namespace.", []string{"namespace"}, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *doraCollector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.perCV {
		ch <- c.perCV[i]
		ch <- c.perN[i]
	}
}

// Collect implements prometheus.Collector. A failed read is logged and
// leaves the series out, so /metrics keeps answering.
func (c *doraCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.h.delivery(ctx, "", DORAWindow, Windows[DORAWindow])
	if err != nil {
		klog.ErrorS(err, "Cannot compute the DORA metrics")
		return
	}
	for i, s := range doraSeries {
		for _, r := range rep.ContainerVersions {
			if r.Deployments+r.Failures == 0 {
				continue // no rollout in the window: absent, not seven zeros per CV
			}
			ch <- prometheus.MustNewConstMetric(c.perCV[i], prometheus.GaugeValue, s.value(r), r.Namespace, r.Name)
		}
		for _, r := range rep.Namespaces {
			ch <- prometheus.MustNewConstMetric(c.perN[i], prometheus.GaugeValue, s.value(r), r.Namespace)
		}
	}
}
