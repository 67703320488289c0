package faults

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestNamespacedInstallWatchesOnlyItsNamespaces installs the chart with
// watchNamespaces (a Role and RoleBinding per namespace, no ClusterRole)
// and runs one `cvmanager run --namespace a,b` as its ServiceAccount,
// through the API recorder: both namespaces' CVs roll out (one through a
// verification Job), and TestNamespacedRoleIsExactlyWhatTheCodeUses then
// checks every request of that process stayed inside the two namespaces
// and inside the Roles.
func TestNamespacedInstallWatchesOnlyItsNamespaces(t *testing.T) {
	a := newFixture(t, "nsa")
	b := newFixture(t, "nsb")
	release := controlplane.NewNamespace(t)
	rendered := renderChart(t, "ns", "--namespace", release, "--set", "leaderElection.enabled=false", "--set", "authorPolicy.enabled=false",
		"--set", "watchNamespaces={"+a.NS+","+b.NS+"}")
	roles := chartRoles(t, rendered)
	if len(roles) != 2 || roles[0].Namespace == roles[1].Namespace {
		t.Fatalf("want one Role in each of %s and %s, got %d", a.NS, b.NS, len(roles))
	}
	if diff := cmp.Diff(namespacedPermissions(t), permissionsOf(roles[0].Rules, "coordination.k8s.io/leases")); diff != "" {
		t.Errorf("the namespaced Role differs from deploy/'s ClusterRole (-deploy +chart):\n%s", diff)
	}
	file := filepath.Join(t.TempDir(), "chart.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(rendered), 0o600))
	if out, err := controlplane.Shared().Kubectl("apply", "-f", file); err != nil {
		t.Fatalf("applying the chart: %v\n%s", err, out)
	}
	cfg, err := controlplane.Shared().ServiceAccountConfig(a.Ctx, release, "cvmanager")
	e2eenv.Must(t, err)
	watchNamespaced(cfg.BearerToken)

	a.createCV(func(s *cvv1.ContainerVersionSpec) { s.Container.Verify = []cvv1.VerifySpec{{Image: "verifier:ok"}} })
	b.createCV()
	p := startProc(t, "namespaced", cfg, "--namespace", a.NS+","+b.NS, "--leader-elect=false", "--configmap-key=",
		"--insecure-registry", a.reg.Host, "--insecure-registry", b.reg.Host)
	p.waitReady(a)
	a.rollOut("v1", 60*time.Second)
	b.rollOut("v1", 60*time.Second)
	if a.patches() != 1 || b.patches() != 1 {
		t.Errorf("patches: %s %d, %s %d; want 1 each", a.NS, a.patches(), b.NS, b.patches())
	}
}

// renderChart runs `helm template` on the chart as release name with args.
func renderChart(t *testing.T, name string, args ...string) string {
	t.Helper()
	root := kubetest.RepoRoot()
	bin, err := exec.Command(filepath.Join(root, "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(bin)), append([]string{"template", name, filepath.Join(root, "charts", "cvmanager")}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return out.String()
}

// chartRoles returns the controller's Roles (not the leader-election one)
// and fails on any ClusterRole: the namespaced install has none.
func chartRoles(t *testing.T, rendered string) []rbacv1.Role {
	t.Helper()
	var roles []rbacv1.Role
	for _, doc := range strings.Split(rendered, "\n---") {
		var role rbacv1.Role
		if yamlUnmarshal(doc, &role) != nil {
			continue
		}
		switch {
		case role.Kind == "ClusterRole" || role.Kind == "ClusterRoleBinding":
			t.Errorf("the namespaced install renders %s %s", role.Kind, role.Name)
		case role.Kind == "Role" && !strings.HasSuffix(role.Name, "leader-election"):
			roles = append(roles, role)
		}
	}
	return roles
}
