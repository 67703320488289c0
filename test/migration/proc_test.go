package migration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// kubeconfig writes cfg (the controller's ServiceAccount unless admin) as
// a kubeconfig file, the --k8s-config a user passes.
func kubeconfig(t *testing.T, admin bool) string {
	t.Helper()
	cfg := e2eenv.ControllerConfig(t)
	if admin {
		cfg = controlplane.SharedConfig()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	e2eenv.Must(t, controlplane.Shared().WriteKubeconfig(rest.CopyConfig(cfg), path))
	return path
}

// cli runs the binary to completion with stdin, returning its combined
// output and exit code.
func cli(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binproc.Binary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("cvmanager %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), code
}

// kubectl runs the control plane's kubectl with stdin.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(controlplane.Shared().BinDir(), "kubectl")
	cmd := exec.Command(bin, append([]string{"--kubeconfig", controlplane.Shared().KubeconfigPath()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// proc is a long-running cvmanager process (run, cr sync) started by a
// test and stopped, by its PID only, at cleanup.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	pid  int
	log  string
	done chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, log: filepath.Join(t.TempDir(), "cvmanager.log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	e2eenv.Must(t, err)
	defer out.Close()
	p.cmd = exec.Command(binproc.Binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out // stdin nil = /dev/null
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e2eenv.Must(t, binproc.StartLocked(p.cmd))
	p.pid = p.cmd.Process.Pid
	t.Logf("started pid %d: cvmanager %s", p.pid, strings.Join(args, " "))
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pid %d output:\n%s", p.pid, tail(p.output()))
		}
	})
	return p
}

func (p *proc) output() string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to this process only, SIGKILL after 5 s.
func (p *proc) stop() {
	binproc.Stop(p.pid, p.done)
}

// waitHTTP waits until url answers 200.
func (p *proc) waitHTTP(e *e2eenv.Env, url string) {
	e.T.Helper()
	e.Eventually(30*time.Second, url+" answering", func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("process exited:\n%s", tail(p.output()))
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("status %d", resp.StatusCode)
	})
}

// portFree says whether 127.0.0.1:port can be listened on now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// lockPort takes a machine-wide lock on port until the test ends, so two
// runs of a test that needs that very port (in other checkouts too) take
// turns instead of failing each other.
func lockPort(t *testing.T, port int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("cvmanager-port-%d.lock", port)), os.O_CREATE|os.O_RDWR, 0o666)
	e2eenv.Must(t, err)
	e2eenv.Must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	t.Cleanup(func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() })
}

// waitPortFree polls until 127.0.0.1:port can be bound, at most limit.
func waitPortFree(port int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		if portFree(port) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// portHolder names the process listening on a local TCP port, from
// /proc/net/tcp and /proc/<pid>/fd, as far as this user may see it.
func portHolder(port int) string {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid := strings.Split(fd, "/")[2]
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			return fmt.Sprintf("pid %s (%s)", pid, strings.ReplaceAll(strings.TrimSpace(string(cmd)), "\x00", " "))
		}
	}
	return "a process this user cannot see"
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
