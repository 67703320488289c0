// Package demo runs the README's first command, `make demo`, the way a
// newcomer does, so the first thing anyone tries cannot break unnoticed.
package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestDemoShowsBothRollouts builds hack/demo (make demo's `go run`) and
// runs it with -exit on a free port: it starts its own control plane and
// registry, and must show both versions rolled out, their history and the
// CV at Success. The demo is stopped with SIGTERM on timeout, so it stops
// the processes it started.
func TestDemoShowsBothRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped: the demo starts its own control plane")
	}
	bin := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", bin, "./hack/demo")
	build.Dir = kubetest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./hack/demo: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-exit", "-port", "0")
	cmd.Dir = kubetest.RepoRoot()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo (pid %d): %v\n%s", cmd.Process.Pid, err, out.String())
	}

	got := out.String()
	checks := []struct{ what, pattern string }{
		{"both versions rolled out", `(?s)rolled out in .*:3f2a9c1@sha256:.*rolled out in .*:8be01d7@sha256:`},
		{"the dashboard's address", `dashboard: http://127\.0\.0\.1:\d+/v1/cv/workloads`},
		{"the history of both rollouts", `(?s)history: Success 3f2a9c1 → 8be01d7 .*history: Success \(none\) → 3f2a9c1`},
		{"the CV at Success in kubectl get cv", `(?m)^web\s+env-prod\s+8be01d7\s+Success\s`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.pattern).MatchString(got) {
			t.Errorf("the demo's output lacks %s (%s):\n%s", c.what, c.pattern, got)
		}
	}
}
