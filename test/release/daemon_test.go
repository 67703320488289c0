package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestStateDaemonRBAC: the chart's daemon mode creates its own
// ServiceAccount and ClusterRole, and they suffice for what the daemon
// runs: `state export --workloads`, plus `--helm-releases` only when
// stateDaemon.helmReleases grants Secrets (without it the export is
// forbidden).
func TestStateDaemonRBAC(t *testing.T) {
	e := e2eenv.New(t)
	a := clusterA(t)
	_, err := a.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", "registry.example.com/web:v1", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "web", "registry.example.com/web"))
	helmCLI(t, "install", "greet", writeChart(t), "--kubeconfig", a.Kubeconfig, "--namespace", e.NS)

	tests := []struct {
		name, release string
		helm          bool
		wantOut       string
	}{
		{"workloads only", "daemon-w", false, "exported 1 ContainerVersions and 1 workloads"},
		{"with Helm releases", "daemon-h", true, "exported 1 ContainerVersions and 2 workloads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kubeconfig := daemonKubeconfig(t, e, tt.release, tt.helm)
			dir := filepath.Join(t.TempDir(), "state")
			out, err := e2eenv.RunCLI("state", "export", "local", "--workloads", "--path", dir, "--kubeconfig", kubeconfig, "--namespace", e.NS)
			if err != nil || !strings.Contains(out, "exported 1 ContainerVersions and 1 workloads") {
				t.Fatalf("export --workloads as the daemon: %v\n%s", err, out)
			}
			out, err = e2eenv.RunCLI("state", "export", "local", "--workloads", "--helm-releases", "--path", dir, "--kubeconfig", kubeconfig, "--namespace", e.NS)
			if tt.helm && (err != nil || !strings.Contains(out, tt.wantOut)) {
				t.Errorf("export --helm-releases as the daemon: %v\n%s", err, out)
			}
			if !tt.helm && (err == nil || !strings.Contains(err.Error()+out, "cannot list resource \"secrets\"")) {
				t.Errorf("without stateDaemon.helmReleases the daemon read Helm's Secrets: %v\n%s", err, out)
			}
		})
	}
}

// daemonKubeconfig applies the chart's daemon objects as release in a new
// namespace and returns a kubeconfig of its ServiceAccount.
func daemonKubeconfig(t *testing.T, e *e2eenv.Env, release string, helmReleases bool) string {
	t.Helper()
	ns := controlplane.NewNamespace(t)
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	set := "stateDaemon.enabled=true,stateDaemon.s3.bucket=b"
	if helmReleases {
		set += ",stateDaemon.helmReleases=true"
	}
	rendered := helmCLI(t, "template", release, chart, "--namespace", ns, "--show-only", "templates/state-daemon.yaml", "--set", set)
	file := filepath.Join(t.TempDir(), "daemon.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(rendered), 0o600))
	cp := controlplane.Shared()
	if out, err := cp.Kubectl("apply", "-f", file); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	cfg, err := cp.ServiceAccountConfig(e.Ctx, ns, release+"-cvmanager-state")
	e2eenv.Must(t, err)
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	e2eenv.Must(t, cp.WriteKubeconfig(cfg, path))
	return path
}
