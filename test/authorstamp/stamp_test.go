package authorstamp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1beta1 "k8s.io/api/admissionregistration/v1beta1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

const authorKey = "cvmanager.dev/author"

// TestPlainApplyIsStampedAndRollsOut is issue 32's authorship "done when".
func TestPlainApplyIsStampedAndRollsOut(t *testing.T) {
	e := e2eenv.New(t)
	cp := controlplane.Shared()
	kubectl := func(args ...string) (string, error) {
		out, err := cp.Kubectl(args...)
		return string(out), err
	}
	if out, err := kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", "05-author-policy.yaml")); err != nil {
		t.Fatalf("installing the guard: %v\n%s", err, out)
	}
	deployer, gitops := account(t, e, "deployer"), account(t, e, "gitops")

	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/web")
	digest := reg.MustPush(t, "team/web", "0a1b2c3", "env-prod")
	dep := gen.NewDeployment(e.NS, "web", "web", repo+":old", 1)
	dep.Spec.Template.Spec.Containers[0].Name = "web"
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, dep, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	example := readmeExample(t, repo)
	file := filepath.Join(t.TempDir(), "web.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(example), 0o600))

	// Today's behaviour: without the stamping policy a plain apply is
	// refused. The guard loads asynchronously too: a server-side dry run,
	// which creates nothing, is repeated until the guard answers it.
	e.Eventually(30*time.Second, "the guard refusing a plain apply", func() (bool, error) {
		out, err := kubectl("apply", "--dry-run=server", "-n", e.NS, "-f", file, "--as", deployer)
		return err != nil && strings.Contains(out, "a ContainerVersion records who wrote it"), fmt.Errorf("%v: %s", err, out)
	})
	out, err := kubectl("apply", "-n", e.NS, "-f", file, "--as", deployer)
	if err == nil || !strings.Contains(out, "a ContainerVersion records who wrote it") {
		t.Fatalf("without the stamping policy, a plain apply should be refused by the guard: %v\n%s", err, out)
	}

	stamp := filepath.Join(kubetest.RepoRoot(), "deploy", "author-stamp")
	if out, err := kubectl("apply", "-f", stamp); err != nil {
		t.Fatalf("installing deploy/author-stamp: %v\n%s", err, out)
	}
	// The control plane is shared: the next test starts without stamping
	// (and waits, as this one did, until the guard alone answers).
	t.Cleanup(func() {
		if out, err := kubectl("delete", "-f", stamp, "--ignore-not-found"); err != nil {
			t.Errorf("removing deploy/author-stamp: %v\n%s", err, out)
		}
	})
	// Admission policies load asynchronously: the same apply is retried
	// until the API server stamps it.
	e.Eventually(30*time.Second, "the plain apply accepted", func() (bool, error) {
		out, err := kubectl("apply", "-n", e.NS, "-f", file, "--as", deployer)
		return err == nil, fmt.Errorf("%v: %s", err, out)
	})
	if got := e.GetCV("web").Annotations[authorKey]; got != deployer {
		t.Fatalf("author %q, want the writer %q", got, deployer)
	}

	startController(t, e, reg)
	e.WaitStatus("web", cvv1.StatusSuccess, digest, 90*time.Second)
	if got, want := e.DeploymentImage("web"), gen.Pinned(repo, "0a1b2c3", digest); got != want {
		t.Errorf("Deployment image %q, want %q", got, want)
	}

	// A forged author is not overwritten: the guard refuses it.
	forged := strings.Replace(strings.Replace(example, "name: web\n", "name: forged\n", 1),
		"metadata:\n", "metadata:\n  annotations:\n    "+authorKey+": system:serviceaccount:"+e.NS+":someone-else\n", 1)
	e2eenv.Must(t, os.WriteFile(file, []byte(forged), 0o600))
	out, err = kubectl("apply", "-n", e.NS, "-f", file, "--as", deployer)
	if err == nil || !strings.Contains(out, "a ContainerVersion records who wrote it") {
		t.Errorf("a forged author should be refused: %v\n%s", err, out)
	}

	// A GitOps loop applying a spec change as its own account becomes the author.
	changed := strings.Replace(example, "pollIntervalSeconds: 60", "pollIntervalSeconds: 30", 1)
	e2eenv.Must(t, os.WriteFile(file, []byte(changed), 0o600))
	if out, err := kubectl("apply", "-n", e.NS, "-f", file, "--as", gitops); err != nil {
		t.Fatalf("spec change by %s: %v\n%s", gitops, err, out)
	}
	if got := e.GetCV("web").Annotations[authorKey]; got != gitops {
		t.Errorf("after %s changed the spec the author is %q, want %q", gitops, got, gitops)
	}
	// The GitOps path: what an impersonating loop applies is checked
	// against that account's rights, not the controller's. ci-bot may
	// write CVs but not Deployments, so its CV is refused by name.
	checkRightsOfStampedWriter(t, e, kubectl, reg, example)

	// A label-only change by someone else keeps the author.
	if out, err := kubectl("label", "cv", "web", "-n", e.NS, "team=web", "--as", deployer); err != nil {
		t.Fatalf("label: %v\n%s", err, out)
	}
	if got := e.GetCV("web").Annotations[authorKey]; got != gitops {
		t.Errorf("after a label change the author is %q, want it kept as %q", got, gitops)
	}
}

// TestChartRendersStampWhereServed: the chart's stamping policy equals
// deploy/'s, and it is rendered only where the API is served.
func TestChartRendersStampWhereServed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "deploy", "author-stamp", "author-stamp.yaml"))
	e2eenv.Must(t, err)
	want := stampPolicies(t, string(data))
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	got := stampPolicies(t, helm(t, "template", "rel", chart, "--api-versions", "admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy"))
	if len(want) != 1 || len(got) != 1 {
		t.Fatalf("stamping policies: deploy/ %d, chart %d; want 1 each", len(want), len(got))
	}
	if diff := cmp.Diff(want[0].Spec, got[0].Spec); diff != "" {
		t.Errorf("the chart's stamping policy differs from deploy/'s (-deploy +chart):\n%s", diff)
	}
	if n := len(stampPolicies(t, helm(t, "template", "rel", chart))); n != 0 {
		t.Errorf("without the API the chart renders %d stamping policies", n)
	}
}

func stampPolicies(t *testing.T, manifests string) []admissionv1beta1.MutatingAdmissionPolicy {
	t.Helper()
	var out []admissionv1beta1.MutatingAdmissionPolicy
	for _, doc := range strings.Split(manifests, "\n---") {
		var p admissionv1beta1.MutatingAdmissionPolicy
		if err := yaml.Unmarshal([]byte(doc), &p); err == nil && p.Kind == "MutatingAdmissionPolicy" {
			out = append(out, p)
		}
	}
	return out
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.Command(filepath.Join(kubetest.RepoRoot(), "hack", "build-helm.sh")).Output()
	e2eenv.Must(t, err)
	out, err := exec.Command(strings.TrimSpace(string(bin)), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// readmeExample is the first YAML block of the README, with the image
// repository pointed at the test's registry.
func readmeExample(t *testing.T, repo string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "README.md"))
	e2eenv.Must(t, err)
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(data)
	if m == nil || !strings.Contains(string(m[1]), "kind: ContainerVersion") {
		t.Fatal("the README has no ContainerVersion example")
	}
	return regexp.MustCompile(`(?m)^(\s*imageRepo:).*$`).ReplaceAllString(string(m[1]), "${1} "+repo)
}

// account is a ServiceAccount of the test's namespace with every right in
// it (a team's deployer), as the user name an impersonating loop uses.
func account(t *testing.T, e *e2eenv.Env, name string) string {
	t.Helper()
	_, err := e.Kube.CoreV1().ServiceAccounts(e.NS).Create(e.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	meta := metav1.ObjectMeta{Name: name, Namespace: e.NS}
	_, err = e.Kube.RbacV1().Roles(e.NS).Create(e.Ctx, &rbacv1.Role{ObjectMeta: meta,
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.RbacV1().RoleBindings(e.NS).Create(e.Ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.NS}}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	return "system:serviceaccount:" + e.NS + ":" + name
}

// startController runs the real binary for the namespace under the
// shipped RBAC, stopped by its PID at cleanup.
func startController(t *testing.T, e *e2eenv.Env, reg *e2eenv.Registry) {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	e2eenv.Must(t, controlplane.Shared().WriteKubeconfig(e2eenv.ControllerConfig(t), kubeconfig))
	logFile, err := os.Create(filepath.Join(dir, "controller.log"))
	e2eenv.Must(t, err)
	defer logFile.Close()
	cmd := exec.Command(binproc.Binary(t), "run", "--kubeconfig", kubeconfig, "--namespace", e.NS, "--leader-elect=false",
		"--insecure-registry", reg.Host, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(binproc.FreePort(t)))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e2eenv.Must(t, binproc.StartLocked(cmd))
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		binproc.Stop(cmd.Process.Pid, done)
		if data, _ := os.ReadFile(logFile.Name()); t.Failed() || !strings.Contains(string(data), "MutatingAdmissionPolicy is served") {
			t.Errorf("controller log (want the start-up line saying the stamping API is served):\n%s", data)
		}
	})
}

// checkRightsOfStampedWriter applies, as ci-bot (CVs only), a CV selecting
// a Deployment: it is stamped with ci-bot, and the controller refuses it
// with the missing permission and leaves the Deployment alone.
func checkRightsOfStampedWriter(t *testing.T, e *e2eenv.Env, kubectl func(...string) (string, error), reg *e2eenv.Registry, example string) {
	t.Helper()
	bot := limitedAccount(t, e, "ci-bot")
	repo := reg.Repo("team/limited")
	reg.MustPush(t, "team/limited", "0a1b2c3", "env-prod")
	dep := gen.NewDeployment(e.NS, "limited", "limited", repo+":old", 1)
	dep.Spec.Template.Spec.Containers[0].Name = "web"
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, dep, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	cv := strings.Replace(strings.Replace(example, "name: web\n", "name: limited\n", 1), "{app: web}", "{app: limited}", 1)
	cv = regexp.MustCompile(`(?m)^(\s*imageRepo:).*$`).ReplaceAllString(cv, "${1} "+repo)
	file := filepath.Join(t.TempDir(), "limited.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(cv), 0o600))
	if out, err := kubectl("apply", "-n", e.NS, "-f", file, "--as", bot); err != nil {
		t.Fatalf("apply as %s: %v\n%s", bot, err, out)
	}
	if got := e.GetCV("limited").Annotations[authorKey]; got != bot {
		t.Fatalf("author %q, want %q", got, bot)
	}
	var msg string
	e.Eventually(60*time.Second, "CV limited refused for its author's rights", func() (bool, error) {
		for _, c := range e.GetCV("limited").Status.Conditions {
			if c.Type == "Authorized" && c.Status == metav1.ConditionFalse {
				msg = c.Message
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", e.GetCV("limited").Status.Conditions)
	})
	if !strings.Contains(msg, bot) || !strings.Contains(msg, "deployments") {
		t.Errorf("refusal %q should name the author %s and the missing permission on deployments", msg, bot)
	}
	if img := e.DeploymentImage("limited"); img != repo+":old" {
		t.Errorf("Deployment limited was changed to %s for an author without the right", img)
	}
}

// limitedAccount may write ContainerVersions in the namespace and nothing else.
func limitedAccount(t *testing.T, e *e2eenv.Env, name string) string {
	t.Helper()
	_, err := e.Kube.CoreV1().ServiceAccounts(e.NS).Create(e.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	meta := metav1.ObjectMeta{Name: name, Namespace: e.NS}
	_, err = e.Kube.RbacV1().Roles(e.NS).Create(e.Ctx, &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"cvmanager.dev"}, Resources: []string{"containerversions"}, Verbs: []string{"*"}}}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.RbacV1().RoleBindings(e.NS).Create(e.Ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.NS}}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	return "system:serviceaccount:" + e.NS + ":" + name
}
