package release

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// helmCLI runs the helm binary the tests build (hack/build-helm.sh, cached).
func helmCLI(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.Command(filepath.Join(kubetest.RepoRoot(), "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(bin)), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// writeChart writes a chart whose ConfigMap carries .Values.greeting.
func writeChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "greeter")
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: greeter\nversion: 1.2.3\n",
		"values.yaml": "greeting: hello\n",
		"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n" +
			"data:\n  greeting: {{ .Values.greeting | quote }}\n",
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		e2eenv.Must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		e2eenv.Must(t, os.WriteFile(path, []byte(text), 0o600))
	}
	return dir
}

// TestExportImportHelmReleases: a release installed in cluster A with the
// helm binary is exported with --helm-releases (chart and values, read with
// the Helm SDK) and installed into an empty cluster B with the same values;
// a dry run installs nothing and a second import skips it.
func TestExportImportHelmReleases(t *testing.T) {
	e := e2eenv.New(t)
	a, b := clusterA(t), clusterB(t)
	helmCLI(t, "install", "greet", writeChart(t), "--kubeconfig", a.Kubeconfig, "--namespace", e.NS, "--set", "greeting=bonjour")

	dir := filepath.Join(t.TempDir(), "state")
	out, err := e2eenv.RunCLI("state", "export", "local", "--helm-releases", "--path", dir, "--kubeconfig", a.Kubeconfig, "--namespace", e.NS)
	if err != nil || !strings.Contains(out, "and 1 workloads") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	importB := func(extra ...string) string {
		t.Helper()
		args := append([]string{"state", "import", "local", "--path", dir, "--kubeconfig", b.Kubeconfig,
			"--namespace", e.NS, "--create-namespaces"}, extra...)
		out, err := e2eenv.RunCLI(args...)
		if err != nil {
			t.Fatalf("import %v: %v\n%s", extra, err, out)
		}
		t.Log(strings.TrimSpace(out))
		return out
	}
	b.ensureNamespace(t, e.NS) // a dry-run install renders against an existing namespace
	if out := importB("--dry-run"); !strings.Contains(out, "would create HelmRelease "+e.NS+"/greet") {
		t.Errorf("dry run should plan the release:\n%s", out)
	}
	if _, err := b.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "greet-greeting", metav1.GetOptions{}); err == nil {
		t.Fatal("the dry run installed the release in B")
	}
	if out := importB(); !strings.Contains(out, "created      HelmRelease "+e.NS+"/greet: chart greeter 1.2.3, deployed") {
		t.Errorf("import should install the release:\n%s", out)
	}
	cm, err := b.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "greet-greeting", metav1.GetOptions{})
	e2eenv.Must(t, err)
	if cm.Data["greeting"] != "bonjour" {
		t.Errorf("B's release renders greeting %q, want A's value bonjour", cm.Data["greeting"])
	}
	if list := helmCLI(t, "list", "--kubeconfig", b.Kubeconfig, "--namespace", e.NS); !strings.Contains(list, "greeter-1.2.3") || !strings.Contains(list, "deployed") {
		t.Errorf("helm list in B:\n%s", list)
	}
	if out := importB(); !strings.Contains(out, "skipped      HelmRelease "+e.NS+"/greet: release exists") {
		t.Errorf("a second import should skip the release:\n%s", out)
	}
}
