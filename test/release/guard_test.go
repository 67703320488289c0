package release

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// TestOwnerGuard: while cluster A exports continuously to a path, cluster B
// may not import from it and take it over, except into --new-path or with
// --force; a cluster never exports over a path another cluster owns; a dry
// run writes nothing anywhere.
func TestOwnerGuard(t *testing.T) {
	e := e2eenv.New(t)
	a, b := clusterA(t), clusterB(t)
	seedCVs(t, e, 3)
	root := t.TempDir()
	path, newPath := filepath.Join(root, "prod"), filepath.Join(root, "prod-green")
	src, err := state.NewLocal(path)
	e2eenv.Must(t, err)
	exporterA := &state.Exporter{Kube: a.Kube, CVs: a.CVs, Backend: src, ClusterID: a.ID, Identity: "cvmanager-a",
		Namespaces: []string{e.NS}, Interval: time.Minute}
	_, err = exporterA.Export(e.Ctx) // A's `run --export-interval 1m` just wrote
	e2eenv.Must(t, err)
	importB := []string{"state", "import", "local", "--path", path, "--kubeconfig", b.Kubeconfig, "--namespace", e.NS, "--create-namespaces"}

	out, err := e2eenv.RunCLI(importB...)
	if err == nil || !strings.Contains(err.Error(), "exports here every 1m0s") || !strings.Contains(err.Error(), "--new-path") {
		t.Fatalf("import from a path A still exports to: %v\n%s", err, out)
	}

	out, err = e2eenv.RunCLI(append(importB, "--new-path", newPath, "--dry-run")...)
	if err != nil || strings.Count(out, state.ImportPlanned) != 3 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if m := readManifest(t, newPath); m != nil {
		t.Errorf("dry run wrote a manifest to --new-path: %+v", m)
	}
	if _, err := b.Kube.CoreV1().Namespaces().Get(e.Ctx, e.NS, metav1.GetOptions{}); err == nil {
		t.Error("dry run created the namespace in B")
	}

	out, err = e2eenv.RunCLI(append(importB, "--new-path", newPath)...)
	if err != nil || !strings.Contains(out, "3 created") {
		t.Fatalf("import into --new-path: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = b.Kube.CoreV1().Namespaces().Delete(e.Ctx, e.NS, metav1.DeleteOptions{}) })
	if m := readManifest(t, newPath); m == nil || m.Owner.ClusterID != b.ID || len(m.Objects) != 3 {
		t.Errorf("--new-path should hold B's copy of 3 CVs, owned by B: %+v", m)
	}
	if m := readManifest(t, path); m.Owner.ClusterID != a.ID {
		t.Errorf("--path should still belong to A, is %+v", m.Owner)
	}
	if _, err := exporterA.Export(e.Ctx); err != nil {
		t.Errorf("A's next export: %v", err)
	}

	out, err = e2eenv.RunCLI("state", "export", "local", "--path", path, "--kubeconfig", b.Kubeconfig, "--namespace", e.NS)
	if err == nil || !strings.Contains(err.Error(), "owned by cluster "+a.ID) {
		t.Fatalf("B exporting over A's path: %v\n%s", err, out)
	}

	out, err = e2eenv.RunCLI(append(importB, "--force")...)
	if err != nil || strings.Count(out, state.ImportExists) != 3 {
		t.Fatalf("forced import: %v\n%s", err, out)
	}
	if m := readManifest(t, path); m.Owner.ClusterID != b.ID || m.Owner.ClaimedBy != state.ClaimImport {
		t.Errorf("a forced import should claim the path for B: %+v", m.Owner)
	}
	if _, err := exporterA.Export(e.Ctx); !errors.Is(err, state.ErrOwned) {
		t.Errorf("A exporting after B took the path over: %v, want ErrOwned", err)
	}
	out, err = e2eenv.RunCLI("state", "show", "local", "--path", path)
	if err != nil || !strings.Contains(out, "owner "+b.ID) {
		t.Errorf("state show: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}
