package tenancy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestChartShipsDeploysAuthorPolicy keeps the chart's copy of the author
// admission policy equal to deploy/05-author-policy.yaml, and checks the
// chart renders it by default and not when authorPolicy.enabled=false.
func TestChartShipsDeploysAuthorPolicy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "deploy", "05-author-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := policies(t, string(data))
	chart := filepath.Join(kubetest.RepoRoot(), "charts", "cvmanager")
	got := policies(t, helm(t, "template", "rel", chart))
	if len(want) != 1 || len(got) != 1 {
		t.Fatalf("policies: deploy/ %d, chart %d; want 1 each", len(want), len(got))
	}
	if diff := cmp.Diff(want[0].Spec, got[0].Spec); diff != "" {
		t.Errorf("the chart's author policy differs from deploy/'s (-deploy +chart):\n%s", diff)
	}
	if off := policies(t, helm(t, "template", "rel", chart, "--set", "authorPolicy.enabled=false")); len(off) != 0 {
		t.Errorf("authorPolicy.enabled=false still renders %d policies", len(off))
	}
}

func policies(t *testing.T, manifests string) []admissionv1.ValidatingAdmissionPolicy {
	t.Helper()
	var out []admissionv1.ValidatingAdmissionPolicy
	for _, doc := range strings.Split(manifests, "\n---") {
		var p admissionv1.ValidatingAdmissionPolicy
		if err := yaml.Unmarshal([]byte(doc), &p); err == nil && p.Kind == "ValidatingAdmissionPolicy" {
			out = append(out, p)
		}
	}
	return out
}
