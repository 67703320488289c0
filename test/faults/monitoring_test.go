package faults

import (
	"bufio"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestMonitoringPackNamesServedMetrics renders the chart's monitoring pack,
// parses every PromQL expression of its alerts and of its Grafana dashboard,
// checks the dashboard JSON is well formed, and checks that each metric the
// expressions name is served on /metrics by a running controller binary
// that has rolled out, failed to poll and has a rollout in progress.
func TestMonitoringPackNamesServedMetrics(t *testing.T) {
	rendered := renderChart(t, "mon", "--namespace", "cvm",
		"--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.grafanaDashboard.enabled=true")
	alerts, dashboard := monitoringPack(t, rendered)
	if len(alerts) != 6 {
		t.Errorf("%d alerts, want 6: %v", len(alerts), keys(alerts))
	}
	exprs := map[string]string{}
	for name, expr := range alerts {
		exprs["alert "+name] = expr
	}
	for name, expr := range dashboardExprs(t, dashboard) {
		exprs["panel "+name] = expr
	}
	named := map[string][]string{} // metric → where
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
		}
		for _, n := range names {
			named[n] = append(named[n], where)
		}
	}
	served := servedMetrics(t)
	for name, where := range named {
		if served[name] {
			continue
		}
		t.Errorf("%s (used by %v) is not served on /metrics", name, where)
	}
	t.Logf("%d expressions parsed; %d metrics named, all served", len(exprs), len(named))
}

// monitoringPack finds the alerts (name → expr) and the dashboard JSON in
// the rendered chart; both must be there with the sidecar label.
func monitoringPack(t *testing.T, rendered string) (map[string]string, []byte) {
	t.Helper()
	alerts := map[string]string{}
	var dashboard []byte
	for _, doc := range strings.Split(rendered, "\n---") {
		var obj struct {
			Kind     string
			Metadata struct{ Labels map[string]string }
			Spec     struct {
				Groups []struct {
					Rules []struct{ Alert, Expr string }
				}
			}
			Data map[string]string
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("rendered chart does not parse: %v\n%s", err, doc)
		}
		switch {
		case obj.Kind == "PrometheusRule":
			for _, g := range obj.Spec.Groups {
				for _, r := range g.Rules {
					alerts[r.Alert] = r.Expr
				}
			}
		case obj.Kind == "ConfigMap" && obj.Metadata.Labels["grafana_dashboard"] == "1":
			dashboard = []byte(obj.Data["cvmanager.json"])
		}
	}
	if len(alerts) == 0 || dashboard == nil {
		t.Fatalf("no PrometheusRule or no labelled dashboard ConfigMap in the chart")
	}
	return alerts, dashboard
}

// dashboardExprs decodes the dashboard strictly enough to catch a broken
// file and returns its queries by panel.
func dashboardExprs(t *testing.T, data []byte) map[string]string {
	t.Helper()
	var d struct {
		Title, UID string
		Panels     []struct {
			Title, Type string
			GridPos     *struct{ X, Y, W, H int } `json:"gridPos"`
			Targets     []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 10 {
		t.Errorf("dashboard %q (uid %q) has %d panels", d.Title, d.UID, len(d.Panels))
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		if p.Title == "" || p.Type == "" || p.GridPos == nil || p.GridPos.W == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %+v lacks a title, type, position or query", p)
		}
		for _, target := range p.Targets {
			out[p.Title+" "+target.RefID] = target.Expr
		}
	}
	return out
}

// metricNames parses a PromQL expression and lists the metrics it selects.
// Grafana's $__rate_interval is replaced by a duration first.
func metricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(strings.ReplaceAll(expr, "$__rate_interval", "5m"))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// servedMetrics runs the controller binary through a rollout, a polling
// error and a rollout left in progress, and lists the sample names on
// its /metrics.
func servedMetrics(t *testing.T) map[string]bool {
	f := newFixture(t, "mon")
	d1 := f.reg.MustPush(t, "team/mon", "v1", "env-prod")
	f.CreateCV(gen.NewCV(f.NS, "mon", f.repo, func(s *cvv1.ContainerVersionSpec) { s.TimeoutSeconds = 600 }))
	f.CreateCV(gen.NewCV(f.NS, "broken", f.reg.Repo("team/absent")))
	p := f.startController("monitoring")
	p.waitReady(f)
	f.WaitStatus("mon", cvv1.StatusSuccess, d1, 60*time.Second)
	// A rollout left in progress: v2's pods cannot be scheduled (no node
	// matches), so they wait without a stuck reason and the 600 s timeout
	// keeps the rollout open while the metrics are read.
	unschedulable := `{"spec":{"template":{"spec":{"nodeSelector":{"cvmanager.dev/no-such-node":"true"}}}}}`
	_, err := f.Kube.AppsV1().Deployments(f.NS).Patch(f.Ctx, "mon", types.StrategicMergePatchType, []byte(unschedulable), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	f.reg.MustPush(t, "team/mon", "v2", "env-prod")
	// The controller's own view, not the API's, must show both: /metrics
	// reads its informer cache, which may trail a read of the API by a
	// moment (a scrape right after the API showed the rollout once lacked it).
	var served map[string]bool
	f.Eventually(60*time.Second, "a rollout in progress and a polling error on /metrics", func() (bool, error) {
		var err error
		served, err = sampleNames(p.url() + "/metrics")
		return served["cvmanager_containerversion_rollout_deadline_timestamp_seconds"] &&
			e2eenv.ConditionIs(f.GetCV("broken"), cvv1.ConditionDegraded, "RegistryError"), err
	})
	return served
}

// sampleNames lists the sample names a /metrics page serves.
func sampleNames(url string) (map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	served := map[string]bool{}
	scan := bufio.NewScanner(resp.Body)
	scan.Buffer(nil, 1<<20)
	for scan.Scan() {
		line := scan.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		served[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return served, scan.Err()
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
