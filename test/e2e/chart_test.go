package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// helm builds (once, cached) and runs helm from the Go module proxy.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	script := filepath.Join(kubetest.RepoRoot(), "hack", "build-helm.sh")
	bin, err := exec.Command(script).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(bin)), args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	return out.String() + stderr.String(), err
}

// TestHelmChartInstallsAndItsRBACSuffices: the chart lints, its schema
// rejects bad values, the rendered manifests and deploy/ apply to the real
// control plane (server-side dry run, then for real), its ClusterRole equals
// deploy/'s,
// and a controller running as the chart's ServiceAccount, with leader
// election in the release namespace, completes a rollout.
func TestHelmChartInstallsAndItsRBACSuffices(t *testing.T) {
	e := e2eenv.New(t)
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	if out, err := helm(t, "lint", chart); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if out, err := helm(t, "lint", chart, "--set", "replicas=0"); err == nil || !strings.Contains(out, "replicas") {
		t.Errorf("schema accepted replicas=0: %s", out)
	}
	release := installChart(t, "rel", "--include-crds", "--set", "registry.insecure={127.0.0.1:5000}", "--set", "defaults.history=true")
	assertSameRules(t, e, "rel-cvmanager")
	deployDir := filepath.Join(kubetest.RepoRoot(), "deploy")
	crds := filepath.Join(deployDir, "crds")
	for _, args := range [][]string{{"apply", "--dry-run=server", "-f", deployDir, "-f", crds}, {"apply", "-f", deployDir, "-f", crds}} {
		if out, err := controlplane.Shared().Kubectl(args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	applyExamples(t)

	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/chart")
	d1 := reg.MustPush(t, "team/chart", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "chart", "chart", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	sa, err := controlplane.Shared().ServiceAccountConfig(e.Ctx, release, "cvmanager")
	e2eenv.Must(t, err)
	kube := kubernetes.NewForConfigOrDie(sa)
	ctrl := e2eenv.NewController(kube, versioned.NewForConfigOrDie(sa), controller.Options{
		Namespace: e.NS, Resolver: reg.Resolver(t), Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	le := controller.LeaderElection{Enabled: true, Namespace: release, Name: "rel-cvmanager",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	go func() { _ = controller.RunLeaderElected(ctx, kube, le, &controller.LeaderState{}, ctrl.Run) }()
	e.CreateCV(gen.NewCV(e.NS, "chart", repo))
	e.WaitStatus("chart", cvv1.StatusSuccess, d1, 60*time.Second)
	if got := len(e.History("chart")); got != 1 {
		t.Errorf("history records under the chart's RBAC: %d", got)
	}
}

// installChart renders the chart as release name into a new namespace with
// the extra helm arguments, applies it (server-side dry run first, then for
// real) and returns the namespace.
func installChart(t *testing.T, name string, args ...string) string {
	t.Helper()
	release := controlplane.NewNamespace(t)
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	rendered, err := helm(t, append([]string{"template", name, chart, "--namespace", release}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	file := filepath.Join(t.TempDir(), "chart.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(rendered), 0o600))
	for _, args := range [][]string{{"apply", "--dry-run=server", "-f", file}, {"apply", "-f", file}} {
		if out, err := controlplane.Shared().Kubectl(args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	return release
}

// assertSameRules compares the chart's ClusterRole with deploy/'s, so the
// two installs never drift apart.
func assertSameRules(t *testing.T, e *e2eenv.Env, chartRole string) {
	t.Helper()
	fromChart, err := e.Kube.RbacV1().ClusterRoles().Get(e.Ctx, chartRole, metav1.GetOptions{})
	e2eenv.Must(t, err)
	data, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "deploy", "10-rbac.yaml"))
	e2eenv.Must(t, err)
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var role rbacv1.ClusterRole
		if yaml.Unmarshal([]byte(doc), &role) != nil || role.Kind != "ClusterRole" {
			continue
		}
		if diff := cmp.Diff(role.Rules, fromChart.Rules); diff != "" {
			t.Errorf("chart ClusterRole differs from deploy/10-rbac.yaml (-deploy +chart):\n%s", diff)
		}
		for _, rule := range role.Rules {
			for _, verb := range rule.Verbs {
				if verb == "*" {
					t.Errorf("wildcard verb in %v", rule.Resources)
				}
			}
		}
		return
	}
	t.Fatal("no ClusterRole in deploy/10-rbac.yaml")
}

// applyExamples applies deploy/examples the documented way: through
// `cvmanager cv stamp`, which records the user as each CV's author, as the
// author admission policy (now installed) requires. Unstamped, they are
// refused.
func applyExamples(t *testing.T) {
	t.Helper()
	examples, err := filepath.Glob(filepath.Join(kubetest.RepoRoot(), "deploy", "examples", "*.yaml"))
	e2eenv.Must(t, err)
	// The API server starts enforcing a new admission policy a moment after
	// it is created (its policy cache syncs), so the refusal is waited for.
	var out []byte
	refused := false
	for deadline := time.Now().Add(15 * time.Second); !refused && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		out, err = controlplane.Shared().Kubectl("apply", "--dry-run=server", "-f", examples[0])
		refused = err != nil && strings.Contains(string(out), "cvmanager.dev/author")
	}
	if !refused {
		t.Errorf("an unstamped example passed the author policy:\n%s", out)
	}
	for _, example := range examples {
		stamped, err := e2eenv.RunCLI("cv", "stamp", "-f", example, "--kubeconfig", controlplane.Shared().KubeconfigPath())
		if err != nil {
			t.Fatalf("cvmanager cv stamp -f %s: %v\n%s", example, err, stamped)
		}
		file := filepath.Join(t.TempDir(), filepath.Base(example))
		e2eenv.Must(t, os.WriteFile(file, []byte(stamped), 0o600))
		for _, args := range [][]string{{"apply", "--dry-run=server", "-f", file}, {"apply", "-f", file}} {
			if out, err := controlplane.Shared().Kubectl(args...); err != nil {
				t.Fatalf("kubectl %v (%s stamped): %v\n%s", args, example, err, out)
			}
		}
	}
}
