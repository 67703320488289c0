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

// TestStateCompletionComesFromTheStateBinary: shell completion of `cvmanager
// state ...` is the real cvmanager-state's (its subcommands), asked through
// cobra's __complete.
func TestStateCompletionComesFromTheStateBinary(t *testing.T) {
	dir := t.TempDir()
	root := NewStateRootCommand(nil)
	var script strings.Builder
	script.WriteString("#!/bin/sh\n[ \"$1 $2\" = \"__complete state\" ] || exit 9\n")
	for _, c := range root.Commands() {
		if c.Name() != "state" {
			continue
		}
		for _, sub := range c.Commands() {
			script.WriteString("echo '" + sub.Name() + "'\n")
		}
	}
	script.WriteString("echo ':4'\n")
	bin := filepath.Join(dir, StateBinary)
	if err := os.WriteFile(bin, []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvStateBinary, bin)
	out, err := execute("__complete", "state", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export", "import", "show", "clear", ":4"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion of `state ` lacks %q:\n%s", want, out)
		}
	}
}

func TestParseCompletionsRefusesAnAnswerWithoutDirective(t *testing.T) {
	if got, d := parseCompletions("export\nimport\n"); got != nil || d != 4 {
		t.Errorf("got %v %d, want nothing and NoFileComp", got, d)
	}
	got, d := parseCompletions("local\ts3\n:36\n")
	if len(got) != 1 || got[0] != "local\ts3" || d != 36 {
		t.Errorf("got %v %d", got, d)
	}
}
