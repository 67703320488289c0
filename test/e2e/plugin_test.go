package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestKubectlPlugin installs the cvmanager binary as kubectl-cv on PATH and
// drives it through the real kubectl: `kubectl cv get` shows a held
// version and the command that releases it, `kubectl cv release` releases
// it, `kubectl cv history` shows the release; -n, --context and -o are
// honoured (the kubeconfig's current context points nowhere).
func TestKubectlPlugin(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/plug")
	d1 := reg.MustPush(t, "team/plug", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "plug", "plug", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "plug", repo, func(s *cvv1.ContainerVersionSpec) { s.Policy = &cvv1.PolicySpec{ReleaseMode: "Manual"} }))
	e.StartController(reg.Resolver(t))
	e.Eventually(60*time.Second, "v1 held", func() (bool, error) { return e.GetCV("plug").Status.AvailableDigest == d1, nil })

	kubectl := pluginEnv(t)
	var rows []dashboard.Row
	out := kubectl(t, "cv", "get", "-n", e.NS, "--context", "test", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("kubectl cv get -o json: %v\n%s", err, out)
	}
	wantCmd := "cvmanager release -n " + e.NS + " --cv plug --version v1"
	if rows[0].State != dashboard.StateHeld || rows[0].AvailableVersion != "v1" || rows[0].ReleaseCommand != wantCmd {
		t.Errorf("held row: %+v", rows[0])
	}
	if out, err := kubectlRun("cv", "get", "-n", e.NS); err == nil || !strings.Contains(out, "127.0.0.1:1") {
		t.Errorf("without --context the kubeconfig's broken current context should be used: %v\n%s", err, out)
	}
	if out := kubectl(t, "cv", "--help"); !strings.Contains(out, "kubectl cv get") && !strings.Contains(out, "kubectl cv [command]") {
		t.Errorf("help does not speak as kubectl cv:\n%s", out)
	}
	out = kubectl(t, "cv", "release", "plug", "--version", "v1", "-n", e.NS, "--context", "test")
	if !strings.Contains(out, "released v1") {
		t.Errorf("kubectl cv release: %s", out)
	}
	e.WaitStatus("plug", cvv1.StatusSuccess, d1, 60*time.Second)
	var records []history.Record
	e.Eventually(30*time.Second, "the release in the history", func() (bool, error) {
		out := kubectl(t, "cv", "history", "plug", "-n", e.NS, "--context", "test", "-o", "json")
		return json.Unmarshal([]byte(out), &records) == nil && len(records) == 1, nil
	})
	if records[0].Trigger != history.TriggerRelease || records[0].ToDigest != d1 {
		t.Errorf("history: %+v", records)
	}
	if out := kubectl(t, "cv", "history", "plug", "-n", e.NS, "--context", "test"); !strings.Contains(out, "FINISHED") || !strings.Contains(out, "release") {
		t.Errorf("history table:\n%s", out)
	}
}

var pluginPath []string // PATH and KUBECONFIG for kubectlRun

// pluginEnv puts the binary on PATH as kubectl-cv and writes a kubeconfig
// whose current context is unreachable and whose context "test" is the
// control plane; it returns a runner that fails the test on error.
func pluginEnv(t *testing.T) func(*testing.T, ...string) string {
	dir := t.TempDir()
	data, err := os.ReadFile(binproc.Binary(t))
	e2eenv.Must(t, err)
	e2eenv.Must(t, os.WriteFile(filepath.Join(dir, "kubectl-cv"), data, 0o755))
	cfg, err := clientcmd.LoadFromFile(controlplane.Shared().KubeconfigPath())
	e2eenv.Must(t, err)
	good := cfg.Contexts[cfg.CurrentContext].DeepCopy()
	cfg.Contexts["test"] = good
	cfg.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	cfg.Contexts["broken"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: good.AuthInfo}
	cfg.CurrentContext = "broken"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	e2eenv.Must(t, clientcmd.WriteToFile(*cfg, kubeconfig))
	pluginPath = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "KUBECONFIG=" + kubeconfig}
	return func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := kubectlRun(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}

// kubectlRun runs the real kubectl, which finds kubectl-cv on PATH.
func kubectlRun(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(controlplane.Shared().BinDir(), "kubectl"), args...)
	cmd.Env = append(os.Environ(), pluginPath...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
