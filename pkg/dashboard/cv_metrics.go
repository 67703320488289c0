package dashboard

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// cvStateCollector exports each ContainerVersion's state from the
// informer cache on scrape, so alerts can name the CV: its status, its
// True conditions (a drift fight, a held release, ...) and the deadline of
// the rollout in progress.
type cvStateCollector struct {
	src                         Source
	status, condition, deadline *prometheus.Desc
}

// CVStateCollector exports cvmanager_containerversion_status,
// cvmanager_containerversion_condition and
// cvmanager_containerversion_rollout_deadline_timestamp_seconds.
func (h *Handler) CVStateCollector() prometheus.Collector {
	return &cvStateCollector{
		src: h.Source,
		status: prometheus.NewDesc("cvmanager_containerversion_status",
			"1 for the ContainerVersion's status.currStatus (Progressing, Success, Failed), 0 for the others.",
			[]string{"namespace", "name", "status"}, nil),
		condition: prometheus.NewDesc("cvmanager_containerversion_condition",
			"1 for each condition of the ContainerVersion that is True, by type and reason.",
			[]string{"namespace", "name", "type", "reason"}, nil),
		deadline: prometheus.NewDesc("cvmanager_containerversion_rollout_deadline_timestamp_seconds",
			"When the rollout in progress times out (its start plus its timeouts), as a Unix time; absent when none runs.",
			[]string{"namespace", "name"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *cvStateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.status
	ch <- c.condition
	ch <- c.deadline
}

// Collect implements prometheus.Collector.
func (c *cvStateCollector) Collect(ch chan<- prometheus.Metric) {
	cvs, err := c.src.ContainerVersions("")
	if err != nil {
		klog.ErrorS(err, "Cannot list ContainerVersions for /metrics")
		return
	}
	for _, cv := range cvs {
		for _, s := range []string{cvv1.StatusProgressing, cvv1.StatusSuccess, cvv1.StatusFailed} {
			ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, boolValue(cv.Status.CurrStatus == s), cv.Namespace, cv.Name, s)
		}
		for _, cond := range cv.Status.Conditions {
			if cond.Status == metav1.ConditionTrue {
				ch <- prometheus.MustNewConstMetric(c.condition, prometheus.GaugeValue, 1, cv.Namespace, cv.Name, cond.Type, cond.Reason)
			}
		}
		if ro := cv.Status.Rollout; ro != nil {
			at := ro.StartTime.Add(rollout.Deadline(cv))
			ch <- prometheus.MustNewConstMetric(c.deadline, prometheus.GaugeValue, float64(at.Unix()), cv.Namespace, cv.Name)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
