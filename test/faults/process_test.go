package faults

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
)

// proc is one `cvmanager run` process started by a test.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	pid    int
	port   int
	stderr string // file with the process's output
	done   chan struct{}
}

// startProc runs `cvmanager run` with the identity of cfg (written as a
// kubeconfig) and extra flags. It is stopped, by its PID only, at cleanup.
func startProc(t testing.TB, name string, cfg *rest.Config, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// Through the recorder: TestClusterRoleIsExactlyWhatTheCodeUses
	// compares what every process used with the shipped ClusterRole.
	if err := controlplane.Shared().WriteKubeconfig(recorded(t, cfg), kubeconfig); err != nil {
		t.Fatal(err)
	}
	port := binproc.FreePort(t)
	p := &proc{t: t, name: name, port: port, stderr: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	full := append([]string{"run", "--kubeconfig", kubeconfig, "--bind-address", "127.0.0.1",
		"--port", strconv.Itoa(port), "--progress-interval", "500ms"}, args...)
	p.cmd = exec.Command(binproc.Binary(t), full...)
	p.cmd.Stdout, p.cmd.Stderr = out, out // stdin nil = /dev/null
	// Pdeathsig: the controller dies with the test binary even when the test
	// is killed before its cleanup runs.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := binproc.StartLocked(p.cmd); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p.pid = p.cmd.Process.Pid
	t.Logf("started %s: pid %d, port %d, log %s", name, p.pid, port, p.stderr)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s (pid %d) log tail:\n%s", name, p.pid, tail(p.log()))
		}
	})
	return p
}

// kill9 kills the process with SIGKILL, as a node failure or OOM kill
// would: no deferred code, no lease release, no graceful shutdown.
func (p *proc) kill9() {
	p.t.Helper()
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 %d: %v", p.pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s (pid %d) survived SIGKILL", p.name, p.pid)
	}
	p.t.Logf("killed %s (pid %d) with SIGKILL", p.name, p.pid)
}

// stop ends the process gracefully (SIGTERM, then SIGKILL after 5 s).
func (p *proc) stop() {
	binproc.Stop(p.pid, p.done)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// url is the process's HTTP server (dashboard, trigger, webhooks).
func (p *proc) url() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// log is everything the process wrote so far.
func (p *proc) log() string {
	data, _ := os.ReadFile(p.stderr)
	return string(data)
}

// waitReady waits until /readyz answers 200: the caches are synced, so
// the trigger, webhook and dashboard handlers see every CV.
func (p *proc) waitReady(f *fixture) {
	f.T.Helper()
	f.Eventually(30*time.Second, p.name+" ready", func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited:\n%s", p.name, tail(p.log()))
		}
		resp, err := http.Get(p.url() + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

// containsAny reports which of needles occur in haystack.
func containsAny(haystack []byte, needles ...string) []string {
	var found []string
	for _, n := range needles {
		if bytes.Contains(haystack, []byte(n)) {
			found = append(found, n)
		}
	}
	return found
}
