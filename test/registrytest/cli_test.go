package registrytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// TestMain removes the binary the CLI tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		_ = os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// cvmanagerBinary builds cmd/cvmanager once per test run, as a user would
// get it.
func cvmanagerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cvmanager-cli-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "cvmanager")
		out, err := exec.Command("go", "build", "-o", binary, "cvmanager.dev/cvmanager/cmd/cvmanager").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(cvmanagerBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// TestTaggerBinaryAsANewUserRunsIt: the built binary, its help, its exit
// codes and the errors a newcomer meets.
func TestTaggerBinaryAsANewUserRunsIt(t *testing.T) {
	reg := startRegistry(t)
	repo := reg.Repo("team/app")
	digest, err := reg.Push("team/app", "3f2a9c1")
	if err != nil {
		t.Fatal(err)
	}
	help := run(t, "cr", "tags", "add", "--help")
	for _, want := range []string{"--repo", "--tags", "--version", "--version-pattern", "--username", "--password", "--docker-config", "--ecr-endpoint", "-o, --output"} {
		if help.code != 0 || !strings.Contains(help.stdout, want) {
			t.Errorf("add --help (exit %d) lacks %q:\n%s", help.code, want, help.stdout)
		}
	}
	failures := []struct {
		name    string
		args    []string
		message string
	}{
		{"missing --version", []string{"cr", "tags", "add", "--repo", repo, "--tags", "env-prod"}, `required flag(s) "version" not set`},
		{"repo with a tag", []string{"cr", "tags", "get", "--repo", repo + ":v1", "--version", "3f2a9c1", "--insecure"}, "must be a repository without tag or digest"},
		{"invalid repo", []string{"cr", "tags", "get", "--repo", "Team/App", "--version", "3f2a9c1"}, `invalid repository "Team/App"`},
		{"wrong repo", []string{"cr", "tags", "get", "--repo", reg.Repo("team/nope"), "--version", "3f2a9c1", "--insecure"}, reg.Repo("team/nope") + ":3f2a9c1"},
		{"unknown version", []string{"cr", "tags", "add", "--repo", repo, "--tags", "x", "--version", "0000000", "--insecure"}, repo + ":0000000"},
		{"unreachable registry", []string{"cr", "tags", "get", "--repo", "127.0.0.1:1/team/app", "--version", "v1", "--insecure"}, "127.0.0.1:1/team/app:v1"},
		{"remove on plain v2", []string{"cr", "tags", "remove", "--repo", repo, "--tags", "env-prod", "--insecure"}, "not supported by this registry"},
		{"bad output", []string{"cr", "tags", "get", "--repo", repo, "--version", "3f2a9c1", "--insecure", "-o", "yaml"}, "unknown output format"},
	}
	for _, tc := range failures {
		r := run(t, tc.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, tc.message) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", tc.name, r.code, r.stderr, tc.message)
		}
	}
	if r := run(t, "cr", "tags", "add", "--repo", repo, "--insecure", "--version", "3f2a9c1", "--tags", "env-prod"); r.code != 0 {
		t.Fatalf("add: exit %d: %s", r.code, r.stderr)
	}
	r := run(t, "cr", "tags", "get", "--repo", repo, "--insecure", "--version", "env-prod", "-o", "json")
	var got struct {
		Digest string   `json:"digest"`
		Tags   []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.Digest != digest || strings.Join(got.Tags, ",") != "3f2a9c1,env-prod" {
		t.Errorf("get: exit %d, %q, %v", r.code, r.stdout, err)
	}
}

// TestTaggerBinaryOnECR: add, get and remove with the real binary through
// --ecr-endpoint (test/ecrapi; live ECR is unreachable from here).
func TestTaggerBinaryOnECR(t *testing.T) {
	reg, api := startECR(t)
	if _, err := reg.Push("team/app", "3f2a9c1"); err != nil {
		t.Fatal(err)
	}
	common := []string{"--repo", ecrRepo, "--ecr-endpoint", api.URL}
	steps := [][]string{
		{"cr", "tags", "add", "--version", "3f2a9c1", "--tags", "env-prod,env-stage"},
		{"cr", "tags", "remove", "--tags", "env-stage"},
	}
	for _, step := range steps {
		if r := run(t, append(step, common...)...); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", step, r.code, r.stderr)
		}
	}
	r := run(t, append([]string{"cr", "tags", "get", "--version", "env-prod"}, common...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "3f2a9c1, env-prod") || strings.Contains(r.stdout, "env-stage") {
		t.Errorf("get: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}
