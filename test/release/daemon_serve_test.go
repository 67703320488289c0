package release

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestStateDaemonServes: the chart runs the daemon with its HTTP server on
// stateDaemon.port behind a Service, and the daemon, run as the chart's
// ServiceAccount, serves on it what it last exported (/v1/state) and its
// export counters (/metrics).
func TestStateDaemonServes(t *testing.T) {
	checkChartWiresDaemonPort(t)

	e := e2eenv.New(t)
	a := clusterA(t)
	_, err := a.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", "registry.example.com/web:v1", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "web", "registry.example.com/web"))
	kubeconfig := daemonKubeconfig(t, e, "daemon-serve", false)

	port := freePort(t)
	ctx, cancel := context.WithCancel(e.Ctx)
	root := e2eenv.StateRoot()
	root.SetOut(io.Discard)
	root.SetArgs([]string{"state", "export", "local", "--path", filepath.Join(t.TempDir(), "state"), "--workloads",
		"--interval", "1s", "--port", strconv.Itoa(port), "--kubeconfig", kubeconfig, "--namespace", e.NS, "--cluster-id", "cluster-a"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("daemon: %v", err)
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	e.Eventually(30*time.Second, "/v1/state lists the CV and the workload, /metrics two successful exports", func() (bool, error) {
		var l state.Listing
		if err := getJSON(base+"/v1/state", &l); err != nil {
			return false, err
		}
		if l.Manifest == nil || l.Objects != 1 || len(l.Manifest.Workloads) != 1 || !l.Alive {
			return false, fmt.Errorf("listing %+v", l)
		}
		body, err := get(base + "/metrics")
		if err != nil {
			return false, err
		}
		ok := metricAtLeast(body, `cvmanager_state_exports_total{result="success"}`, 2) &&
			metricAtLeast(body, `cvmanager_state_last_export_success_timestamp_seconds`, float64(time.Now().Add(-time.Minute).Unix())) &&
			metricAtLeast(body, `cvmanager_state_exported_objects{kind="containerversions"}`, 1) &&
			strings.Contains(body, `cvmanager_state_exports_total{result="error"} 0`) &&
			strings.Contains(body, "cvmanager_state_export_duration_seconds_count")
		return ok, fmt.Errorf("metrics:\n%s", grepLines(body, "cvmanager_state_"))
	})
}

// checkChartWiresDaemonPort renders the daemon and checks its server
// listens on stateDaemon.port, probed, behind a Service of that port.
func checkChartWiresDaemonPort(t *testing.T) {
	t.Helper()
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	out := helmCLI(t, "template", "r", chart, "--namespace", "ops", "--show-only", "templates/state-daemon.yaml",
		"--set", "stateDaemon.enabled=true,stateDaemon.s3.bucket=b,stateDaemon.port=9099")
	var dep appsv1.Deployment
	var svc corev1.Service
	for _, doc := range strings.Split(out, "\n---") {
		var kind struct{ Kind string }
		e2eenv.Must(t, yaml.Unmarshal([]byte(doc), &kind))
		switch kind.Kind {
		case "Deployment":
			e2eenv.Must(t, yaml.Unmarshal([]byte(doc), &dep))
		case "Service":
			e2eenv.Must(t, yaml.Unmarshal([]byte(doc), &svc))
		}
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 || len(svc.Spec.Ports) != 1 {
		t.Fatalf("the chart renders no daemon Deployment and Service:\n%s", out)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--port=9099") || !strings.Contains(args, "--bind-address=0.0.0.0") ||
		len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9099 || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("daemon container: args %q, ports %v, liveness %v", args, c.Ports, c.LivenessProbe)
	}
	if p := svc.Spec.Ports[0]; p.Port != 9099 || p.TargetPort.String() != "http" || svc.Spec.Selector["app.kubernetes.io/name"] != "cvmanager-state" {
		t.Errorf("daemon Service: port %v, selector %v", p, svc.Spec.Selector)
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %d %s", url, resp.StatusCode, body)
	}
	return string(body), err
}

func getJSON(url string, v any) error {
	body, err := get(url)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(body), v)
}

// metricAtLeast reports whether the sample named exactly (with labels)
// is at least min.
func metricAtLeast(body, sample string, min float64) bool {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return err == nil && v >= min
		}
	}
	return false
}

func grepLines(body, prefix string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
