package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestPolicyListShowsControllerRestrictions: each CV's row names the
// controller-wide restrictions of its namespace, from the settings
// ConfigMap and from the flags, and the text table shows them.
func TestPolicyListShowsControllerRestrictions(t *testing.T) {
	kube := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cvmanager"},
		Data:       map[string]string{settingRestrictions: "prod-.*=v[0-9]+\nstaging=.*\n"},
	})
	f := &policyFlags{settings: DefaultSettingsConfigMap, restrictions: []string{"dev=dev-.*"}}
	rows := []PolicyRow{{Namespace: "prod-eu", Name: "web"}, {Namespace: "dev", Name: "web"}, {Namespace: "qa", Name: "web"}}
	var warn bytes.Buffer
	if err := f.addRestrictions(context.Background(), &warn, kube, rows); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range rows {
		got[r.Namespace] = r.ControllerRestrictions
	}
	want := map[string][]string{"prod-eu": {"prod-.*=v[0-9]+"}, "dev": {"dev=dev-.*"}, "qa": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restrictions by namespace (-want +got):\n%s", diff)
	}
	if warn.Len() > 0 {
		t.Errorf("unexpected warning: %s", warn.String())
	}
	var out bytes.Buffer
	if err := printPolicies(&out, rows, "text"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "CONTROLLER-RESTRICTIONS") || !strings.Contains(out.String(), "prod-.*=v[0-9]+") {
		t.Errorf("table:\n%s", out.String())
	}
}
