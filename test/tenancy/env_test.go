package tenancy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

var (
	policyErr error
	policyOne sync.Once
)

// installAuthorPolicy applies deploy/05-author-policy.yaml and waits until
// it refuses a CV without an author (policies take effect asynchronously).
func installAuthorPolicy(e *e2eenv.Env) {
	e.T.Helper()
	policyOne.Do(func() {
		out, err := controlplane.Shared().Kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", "05-author-policy.yaml"))
		if err != nil {
			policyErr = fmt.Errorf("applying the author policy: %v\n%s", err, out)
		}
	})
	e2eenv.Must(e.T, policyErr)
	probe := gen.NewCV(e.NS, "policy-probe", "127.0.0.1:1/probe")
	e.Eventually(20*time.Second, "the author policy enforced", func() (bool, error) {
		_, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, probe,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "cvmanager.dev/author"), err
	})
}

// mode is how the chart grants the controller its rights.
type mode struct {
	name string
	// namespaced renders watchNamespaces=<the test's namespace>: a Role
	// there instead of the ClusterRole.
	namespaced bool
}

var modes = []mode{{name: "ClusterRole"}, {name: "watchNamespaces", namespaced: true}}

// installChart renders the chart into a fresh release namespace with the
// mode's RBAC (author policy off: the one from deploy/ is installed) and
// returns a client config of the chart's ServiceAccount.
func installChart(e *e2eenv.Env, m mode) *rest.Config {
	e.T.Helper()
	release := controlplane.NewNamespace(e.T)
	name := "t" + release[len(release)-6:] // unique: ClusterRoles are cluster-wide
	args := []string{"template", name, filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager"), "--namespace", release,
		"--set", "authorPolicy.enabled=false", "--set", "leaderElection.enabled=false"}
	if m.namespaced {
		args = append(args, "--set", "watchNamespaces={"+e.NS+"}")
	}
	rendered := helm(e.T, args...)
	var kinds []string
	for _, doc := range strings.Split(rendered, "\n---") {
		var meta struct{ Kind string }
		if yaml.Unmarshal([]byte(doc), &meta) == nil && meta.Kind != "" {
			kinds = append(kinds, meta.Kind)
		}
	}
	clusterWide := strings.Contains(strings.Join(kinds, ","), "ClusterRole")
	if clusterWide == m.namespaced {
		e.T.Fatalf("mode %s rendered %v", m.name, kinds)
	}
	file := filepath.Join(e.T.TempDir(), "chart.yaml")
	e2eenv.Must(e.T, os.WriteFile(file, []byte(rendered), 0o600))
	if out, err := controlplane.Shared().Kubectl("apply", "-f", file); err != nil {
		e.T.Fatalf("applying the chart: %v\n%s", err, out)
	}
	if !m.namespaced { // ClusterRoles outlive the namespace
		e.T.Cleanup(func() {
			_, _ = controlplane.Shared().Kubectl("delete", "-f", file, "--ignore-not-found", "--wait=false")
		})
	}
	cfg, err := controlplane.Shared().ServiceAccountConfig(e.Ctx, release, "cvmanager")
	e2eenv.Must(e.T, err)
	return cfg
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.Command(filepath.Join(kubetest.RepoRoot(), "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(bin)), args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.String())
	}
	return out.String()
}

// proc is one `cvmanager run` started by a test, stopped by its PID.
type proc struct {
	pid  int
	port int
	log  string
	done chan struct{}
}

// startController runs the binary for the test's namespace as cfg.
func startController(e *e2eenv.Env, cfg *rest.Config, reg *e2eenv.Registry, extra ...string) *proc {
	e.T.Helper()
	dir := e.T.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	e2eenv.Must(e.T, controlplane.Shared().WriteKubeconfig(cfg, kubeconfig))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e2eenv.Must(e.T, err)
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	p := &proc{port: port, log: filepath.Join(dir, "cvmanager.log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	e2eenv.Must(e.T, err)
	defer out.Close()
	args := append([]string{"run", "--kubeconfig", kubeconfig, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(port),
		"--namespace", e.NS, "--leader-elect=false", "--progress-interval", "500ms", "--insecure-registry", reg.Host}, extra...)
	cmd := exec.Command(binproc.Binary(e.T), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e2eenv.Must(e.T, cmd.Start())
	p.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.T.Cleanup(func() {
		p.stop()
		if e.T.Failed() {
			data, _ := os.ReadFile(p.log)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			e.T.Logf("controller (pid %d) log tail:\n%s", p.pid, data)
		}
	})
	return p
}

// stop ends the process (SIGTERM, SIGKILL after 5 s) and waits for it.
func (p *proc) stop() {
	binproc.Stop(p.pid, p.done)
}

// account creates ServiceAccount name in the test's namespace with a Role
// of rules, and returns its client config and CV client.
func account(e *e2eenv.Env, name string, rules ...rbacv1.PolicyRule) (*rest.Config, versioned.Interface) {
	e.T.Helper()
	cfg, err := controlplane.Shared().ServiceAccountConfig(e.Ctx, e.NS, name)
	e2eenv.Must(e.T, err)
	if len(rules) > 0 {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.NS}, Rules: rules}
		_, err = e.Kube.RbacV1().Roles(e.NS).Create(e.Ctx, role, metav1.CreateOptions{})
		e2eenv.Must(e.T, err)
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.NS},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.NS}}}
		_, err = e.Kube.RbacV1().RoleBindings(e.NS).Create(e.Ctx, binding, metav1.CreateOptions{})
		e2eenv.Must(e.T, err)
	}
	return cfg, versioned.NewForConfigOrDie(cfg)
}

// cvRights is everything on ContainerVersions and nothing else: the tenant.
var cvRights = rbacv1.PolicyRule{APIGroups: []string{cvv1.SchemeGroupVersion.Group}, Resources: []string{"containerversions"},
	Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}

// createAs creates cv with the given client, stamped with author.
func createAs(e *e2eenv.Env, cvs versioned.Interface, author authz.Identity, cv *cvv1.ContainerVersion) {
	e.T.Helper()
	authz.Stamp(cv, author)
	_, err := cvs.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, cv, metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
}

// serviceAccountUser is the user name of a ServiceAccount's token.
func serviceAccountUser(ns, name string) authz.Identity {
	return authz.Identity{User: "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
}

// waitRefused waits for Authorized=False and returns its message, which
// must contain every want; an Event with reason Forbidden must say the same.
func waitRefused(e *e2eenv.Env, name string, want ...string) string {
	e.T.Helper()
	var msg string
	e.Eventually(45*time.Second, "CV "+name+" refused", func() (bool, error) {
		cv := e.GetCV(name)
		for _, c := range cv.Status.Conditions {
			if c.Type == "Authorized" && c.Status == metav1.ConditionFalse && c.Reason == authz.ReasonForbidden {
				msg = c.Message
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", cv.Status.Conditions)
	})
	for _, w := range want {
		if !strings.Contains(msg, w) {
			e.T.Errorf("CV %s: refusal %q does not say %q", name, msg, w)
		}
	}
	events, err := e.Kube.CoreV1().Events(e.NS).List(e.Ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=Forbidden"})
	e2eenv.Must(e.T, err)
	found := false
	for _, ev := range events.Items {
		found = found || (ev.Type == corev1.EventTypeWarning && ev.Message == msg)
	}
	if !found {
		e.Eventually(10*time.Second, "a Forbidden Event on "+name, func() (bool, error) {
			events, err := e.Kube.CoreV1().Events(e.NS).List(e.Ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=Forbidden"})
			return err == nil && len(events.Items) > 0 && strings.Contains(events.Items[0].Message, want[0]), err
		})
	}
	return msg
}

// authzMetrics are the process's cvmanager_authz_* series, for the log.
func (p *proc) authzMetrics() string {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.port) + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "cvmanager_authz_") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
