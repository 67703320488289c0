package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// execute runs the command tree in-process with args and returns output and error.
func execute(args ...string) (string, error) {
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestHelpShowsTheWholeCommandTree(t *testing.T) {
	out, err := execute("--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"run ", "cr ", "  sync ", "    status ", "  tags ", "    get ", "    add ", "    remove ", "cv ", "  get ", "policy ", "  apply ", "  delete ", "  list ", "version ", "completion "} {
		if !strings.Contains(out, "\n  "+line) {
			t.Errorf("help lacks %q:\n%s", line, out)
		}
	}
	for _, flag := range []string{"--kubeconfig", "--k8s-config", "--context"} {
		if !strings.Contains(out, flag) {
			t.Errorf("help lacks flag %s", flag)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args    []string
		message string
	}{
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"deploy"}, `unknown command "deploy"`},
		{[]string{"version", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"version", "extra"}, `unknown command "extra"`},
		{[]string{"cr", "sync"}, `required flag(s) "cv" not set`},
		{[]string{"cr", "sync", "status", "-n", "x"}, `required flag(s) "cv" not set`},
		{[]string{"run", "--cv-selector", "a in (", "--kubeconfig", "/nonexistent"}, "--cv-selector"},
		{[]string{"release", "web", "--branch", "main", "--artifact", "main-0123456789"}, "give --branch or --artifact, not both"},
		{[]string{"release", "web", "--branch", "main", "--version", "v1"}, "leave it out"},
		{[]string{"release", "--service", "web", "--branch", "main"}, "give --env and no CV name"},
		{[]string{"policy", "apply", "--cv", "web"}, "nothing to apply"},
		{[]string{"policy", "delete", "--cv", "web"}, "nothing to delete"},
		{[]string{"cv", "policy", "apply", "--cv", "web"}, "nothing to apply"},
		{[]string{"policy", "list", "-A", "--cv", "web"}, "leave out -A"},
		{[]string{"policy", "apply", "--auto-release-branch", "main"}, `required flag(s) "cv" not set`},
		{[]string{"policy", "list", "-o", "xml", "--kubeconfig", "/nonexistent"}, `unknown output format "xml"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := execute(tc.args...)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	out, err := execute("version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"version": "v0.0.0-dev"`) || !strings.Contains(out, `"goVersion"`) {
		t.Errorf("unexpected version output: %s", out)
	}
}

func TestKubeconfigResolution(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/config"
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:1111"}
- name: b
  cluster: {server: "https://127.0.0.1:2222"}
users:
- name: u
  user: {token: t}
contexts:
- name: ctx-a
  context: {cluster: a, user: u, namespace: team-a}
- name: ctx-b
  context: {cluster: b, user: u}
current-context: ctx-a
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		flags    KubeFlags
		env      string
		wantHost string
		wantNS   string
	}{
		{"explicit --kubeconfig, current context", KubeFlags{Kubeconfig: path}, "", "https://127.0.0.1:1111", "team-a"},
		{"--context picks another", KubeFlags{Kubeconfig: path, Context: "ctx-b"}, "", "https://127.0.0.1:2222", "default"},
		{"$KUBECONFIG", KubeFlags{}, path, "https://127.0.0.1:1111", "team-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			t.Setenv("HOME", dir) // no ~/.kube/config of the machine
			cfg, err := tc.flags.RESTConfig()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost {
				t.Errorf("host = %s, want %s", cfg.Host, tc.wantHost)
			}
			if ns := tc.flags.Namespace(); ns != tc.wantNS {
				t.Errorf("namespace = %s, want %s", ns, tc.wantNS)
			}
		})
	}
}
