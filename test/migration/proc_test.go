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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// binary builds ./cmd/cvmanager once, as a user builds it.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cvmanager-migration-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cvmanager")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/cvmanager")
		cmd.Dir = kubetest.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cvmanager: %v\n%s", err, out)
		}
		t.Logf("built %s in %s", binPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

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
	cmd := exec.CommandContext(ctx, binary(t), args...)
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
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out // stdin nil = /dev/null
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e2eenv.Must(t, startLocked(p.cmd))
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
	if p.exited() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
	}
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

// starts runs cmd.Start on one locked OS thread: Pdeathsig fires when the
// thread that forked dies, and Go retires idle threads.
var starts = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread()
		for f := range starts {
			f()
		}
	}()
}

func startLocked(cmd *exec.Cmd) error {
	errc := make(chan error)
	starts <- func() { errc <- cmd.Start() }
	return <-errc
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e2eenv.Must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
