package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestMetricsAfterRollout scrapes /metrics after one rollout and parses it
// with the Prometheus text parser: names, labels and values are asserted.
func TestMetricsAfterRollout(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/metrics")
	d1 := reg.MustPush(t, "team/metrics", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "metrics", "metrics", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	capture := newMetricsCapture()
	e.StartController(reg.Resolver(t), capture.use)
	e.CreateCV(gen.NewCV(e.NS, "metrics", repo))
	e.WaitStatus("metrics", cvv1.StatusSuccess, d1, 60*time.Second)

	srv := httptest.NewServer(server.NewMux(capture.m.Registry, server.Readiness{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	e2eenv.Must(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	e2eenv.Must(t, err)

	if got := value(families, "cvmanager_rollouts_total", map[string]string{"outcome": "Success"}); got != 1 {
		t.Errorf("cvmanager_rollouts_total{outcome=Success} = %v, want 1", got)
	}
	if got := value(families, "cvmanager_syncers", nil); got != 1 {
		t.Errorf("cvmanager_syncers = %v, want 1", got)
	}
	if got := value(families, "cvmanager_polls_total", map[string]string{"result": "changed"}); got < 1 {
		t.Errorf("cvmanager_polls_total{result=changed} = %v, want ≥ 1", got)
	}
	for _, name := range []string{"cvmanager_rollout_duration_seconds", "cvmanager_poll_duration_seconds",
		"cvmanager_workqueue_adds_total", "cvmanager_workqueue_depth", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if got := value(families, "cvmanager_workqueue_adds_total", map[string]string{"name": "containerversions"}); got < 1 {
		t.Errorf("workqueue adds = %v", got)
	}
}

// value returns the counter, gauge or histogram-count value of the series
// of family name whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.Label {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
