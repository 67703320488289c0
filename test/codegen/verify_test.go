// Package codegen_test checks that `make verify` catches generated files
// edited by hand.
package codegen_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestVerifyCodegenFailsOnAHandEditedFile runs codegen/verify-codegen.sh in
// a copy of the repository where a generated lister and the chart's copy of
// the CRD were edited by hand: it must fail and name both. (The unedited
// case is `make verify` itself, which `make test` runs first.)
func TestVerifyCodegenFailsOnAHandEditedFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the code generators (about 30 s)")
	}
	root := kubetest.RepoRoot()
	copyDir := t.TempDir()
	files, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Fields(string(files)) {
		copyFile(t, filepath.Join(root, rel), filepath.Join(copyDir, rel))
	}
	edits := []string{
		"pkg/generated/listers/cvmanager/v1alpha1/containerversion.go",
		"charts/cvmanager/crds/cvmanager.dev_containerversions.yaml",
	}
	for _, rel := range edits {
		appendTo(t, filepath.Join(copyDir, rel), "\n# edited by hand\n")
	}

	cmd := exec.Command(filepath.Join(copyDir, "codegen", "verify-codegen.sh"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err == nil {
		t.Fatalf("verify-codegen.sh passed with hand-edited generated files:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "generated files are out of date") {
		t.Errorf("verify-codegen.sh failed without saying why:\n%s", out.String())
	}
	for _, rel := range edits {
		if !strings.Contains(out.String(), filepath.Base(rel)) || !strings.Contains(out.String(), "-# edited by hand") {
			t.Errorf("the diff does not show the edit of %s:\n%s", rel, out.String())
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	info, err := os.Lstat(from)
	if os.IsNotExist(err) {
		return // deleted in the working tree, not yet committed
	}
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, info.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
