package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLeaseNamespaceFallsBackToTheKubeconfigContext: outside a pod the
// Lease goes to the namespace of the kubeconfig context, which exists,
// not to a fixed namespace that may not; the flag and POD_NAMESPACE win.
func TestLeaseNamespaceFallsBackToTheKubeconfigContext(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kube := &KubeFlags{Kubeconfig: kubeconfig}
	for _, tc := range []struct {
		flag, pod, want, from string
	}{
		{"", "", "team-a", "the kubeconfig context"},
		{"", "cvmanager-system", "cvmanager-system", "POD_NAMESPACE"},
		{"leases", "cvmanager-system", "leases", "--leader-elect-namespace"},
	} {
		t.Setenv("POD_NAMESPACE", tc.pod)
		o := &runOptions{leaseNamespace: tc.flag}
		if ns, from := o.resolveLeaseNamespace(kube); ns != tc.want || from != tc.from {
			t.Errorf("flag %q POD_NAMESPACE %q: %q from %s, want %q from %s", tc.flag, tc.pod, ns, from, tc.want, tc.from)
		}
	}
}
