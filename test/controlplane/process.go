package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one component process. done is closed once the process has been
// reaped, so a wait loop notices a crashed component at once instead of
// timing out.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, SIGKILL after grace, and waits
// for the process to be reaped.
func (p *proc) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// launch starts a component in its own process group, with stdin from
// /dev/null, output appended to <dir>/<name>.log, and records its PID.
func (c *ControlPlane) launch(name string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(filepath.Join(c.binDir, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile // stdin nil = /dev/null
	cmd.Env = c.minimalEnv()
	// Pdeathsig kills the component when the test binary dies without
	// running Stop (panic, -timeout, SIGKILL): no etcd outlives its test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startOnLockedThread(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p, c.recordPIDs()
}

// launcher runs every cmd.Start on one OS thread that never exits: the
// kernel sends Pdeathsig when the *thread* that forked dies, and the Go
// runtime may retire other threads while the test is still running.
var launcher struct {
	once sync.Once
	reqs chan launchRequest
}

type launchRequest struct {
	cmd *exec.Cmd
	err chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	launcher.once.Do(func() {
		launcher.reqs = make(chan launchRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range launcher.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	req := launchRequest{cmd: cmd, err: make(chan error, 1)}
	launcher.reqs <- req
	return <-req.err
}

// PIDs returns the process IDs this control plane started, by component.
func (c *ControlPlane) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := map[string]int{}
	for name, p := range c.procs {
		pids[name] = p.cmd.Process.Pid
	}
	return pids
}

// PIDFile lists "<component> <pid>" lines for every running component, so
// a human (or a script) can find exactly what a crashed test left behind.
func (c *ControlPlane) PIDFile() string { return filepath.Join(c.dir, "pids") }

func (c *ControlPlane) recordPIDs() error {
	var lines []string
	for name, pid := range c.PIDs() {
		lines = append(lines, fmt.Sprintf("%s %d", name, pid))
	}
	sort.Strings(lines)
	return os.WriteFile(c.PIDFile(), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// logTail returns the end of a component's log, for error messages.
func (c *ControlPlane) logTail(name string) string {
	data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return fmt.Sprintf("--- tail of %s.log ---\n%s", name, data)
}

// minimalEnv keeps PATH and sets a private HOME so no ETCD_* variable and
// no ~/.kwok/kwok.yaml of the user's environment changes a component.
func (c *ControlPlane) minimalEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
}
