// Package controlplane starts a real Kubernetes control plane on 127.0.0.1
// for tests: etcd, kube-apiserver (RBAC on), kube-controller-manager,
// kube-scheduler and kwok with one fake node. Pods are "run" by kwok: they
// become Ready at once, except pods whose image contains "unready" (kept in
// ImagePullBackOff) and Job pods whose image contains "failjob" (exit 1).
//
// The binaries come from hack/build-control-plane.sh, which builds them once
// from the Go module proxy and caches them by version.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure Start.
type Options struct {
	// BinDir holds the binaries; empty runs the build script.
	BinDir string
	// KeepDir keeps the temporary directory (logs, data) after Stop.
	KeepDir bool
	// Log receives progress lines; nil means os.Stderr.
	Log io.Writer
}

// ControlPlane is a running local control plane.
type ControlPlane struct {
	opts    Options
	binDir  string
	dir     string
	ports   ports
	token   string
	admin   *rest.Config
	mu      sync.Mutex
	procs   map[string]*exec.Cmd
	stopped bool
}

type ports struct{ etcdClient, etcdPeer, apiserver int }

// adminToken authenticates the test's admin user (group system:masters).
const adminToken = "cvmanager-test-admin-token"

// Start builds the binaries if needed and starts every component.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	binDir, err := resolveBinDir(ctx, opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cvmanager-controlplane-")
	if err != nil {
		return nil, err
	}
	c := &ControlPlane{opts: opts, binDir: binDir, dir: dir, token: adminToken, procs: map[string]*exec.Cmd{}}
	begin := time.Now()
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	apiReady := time.Since(begin)
	if err := c.startNode(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	fmt.Fprintf(opts.Log, "control plane: API ready in %s, node Ready in %s (%s)\n",
		apiReady.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond), dir)
	return c, nil
}

func (c *ControlPlane) start(ctx context.Context) error {
	var err error
	if c.ports, err = freePorts(); err != nil {
		return err
	}
	if err := c.writeCredentials(); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	if err := c.writeAdminKubeconfig(); err != nil {
		return err
	}
	if err := c.startControllerManager(); err != nil {
		return err
	}
	return c.startScheduler()
}

// resolveBinDir returns opts.BinDir or runs the build script, streaming its
// progress: a cold build takes about 13 minutes on 2 cores.
func resolveBinDir(ctx context.Context, opts Options) (string, error) {
	if opts.BinDir != "" {
		return opts.BinDir, nil
	}
	script := filepath.Join(repoRoot(), "hack", "build-control-plane.sh")
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = opts.Log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane with %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// AdminConfig is a client config with cluster-admin rights.
func (c *ControlPlane) AdminConfig() *rest.Config { return rest.CopyConfig(c.admin) }

// KubeconfigPath is the admin kubeconfig, for kubectl and subprocesses.
func (c *ControlPlane) KubeconfigPath() string { return filepath.Join(c.dir, "admin.kubeconfig") }

// BinDir holds the control plane's binaries, kubectl included.
func (c *ControlPlane) BinDir() string { return c.binDir }

// Dir is the temporary directory with data and logs.
func (c *ControlPlane) Dir() string { return c.dir }

// AdminClient is a clientset with cluster-admin rights.
func (c *ControlPlane) AdminClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(c.AdminConfig())
}

// Kubectl runs kubectl against the control plane as admin.
func (c *ControlPlane) Kubectl(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.binDir, "kubectl"), append([]string{"--kubeconfig", c.KubeconfigPath()}, args...)...)
	return cmd.CombinedOutput()
}

// Stop kills exactly the processes this control plane started (each in its
// own process group) and removes the temporary directory unless KeepDir.
func (c *ControlPlane) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	// Reverse start order: kwok and controllers before the apiserver, etcd last.
	for _, name := range []string{"kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		if cmd := c.procs[name]; cmd != nil {
			errs = append(errs, stopProcess(cmd))
		}
	}
	if !c.opts.KeepDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// PIDs returns the process IDs this control plane started.
func (c *ControlPlane) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := map[string]int{}
	for name, cmd := range c.procs {
		pids[name] = cmd.Process.Pid
	}
	return pids
}

func stopProcess(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	return nil
}

// launch starts a component in its own process group with stdin from
// /dev/null and its output in <dir>/<name>.log, and records its PID.
func (c *ControlPlane) launch(name string, env []string, args ...string) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(c.binDir, binaryOf(name)), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = logFile.Sync() }()
	c.mu.Lock()
	c.procs[name] = cmd
	c.mu.Unlock()
	return cmd, c.recordPIDs()
}

func binaryOf(name string) string { return name }

func (c *ControlPlane) recordPIDs() error {
	var b strings.Builder
	for name, pid := range c.pidsLocked() {
		fmt.Fprintf(&b, "%s %d\n", name, pid)
	}
	return os.WriteFile(filepath.Join(c.dir, "pids"), []byte(b.String()), 0o600)
}

func (c *ControlPlane) pidsLocked() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := map[string]int{}
	for name, cmd := range c.procs {
		pids[name] = cmd.Process.Pid
	}
	return pids
}

// logTail returns the end of a component's log, for error messages.
func (c *ControlPlane) logTail(name string) string {
	data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

// minimalEnv keeps PATH and a private HOME so no ETCD_* variable or
// ~/.kwok/kwok.yaml from the user's environment changes a component.
func (c *ControlPlane) minimalEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
}
