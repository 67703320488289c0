package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateRunsTheStateBinary: `cvmanager state ...` hands every argument
// (flags and --help included, the root's --kubeconfig too) to
// cvmanager-state and passes its output and exit status on.
func TestStateRunsTheStateBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, StateBinary)
	script := "#!/bin/sh\necho \"args: $*\"\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvStateBinary, bin)
	out, err := execute("--kubeconfig", "/k", "state", "export", "local", "--path", "/p", "--help")
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("error %v: want the child's exit status 3", err)
	}
	if want := "args: state --kubeconfig /k export local --path /p --help"; !strings.Contains(out, want) {
		t.Errorf("output %q lacks %q", out, want)
	}
}

func TestStateWithoutTheStateBinarySaysWhere(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvStateBinary, "")
	_, err := execute("state", "show", "local", "--path", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "cvmanager-state beside cvmanager or on $PATH") {
		t.Fatalf("error %v: want where the state binary is looked for", err)
	}
}
