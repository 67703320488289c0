// Package controlplane starts a real Kubernetes control plane on 127.0.0.1
// for tests: etcd, kube-apiserver (RBAC on), kube-controller-manager,
// kube-scheduler and kwok with one fake node. A fake client proves little:
// this one has admission, validation, status subresources, the workload
// controllers, garbage collection and RBAC.
//
// Pods are "run" by kwok (stages in hack/kwok): they become Ready at once and
// report imageID = their image, except pods whose image contains "unready"
// (kept waiting in ImagePullBackOff, so a Deployment rolling to them hits
// ProgressDeadlineExceeded). Job pods complete, except when their image
// contains "failjob" (they fail with exit code 1).
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
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure Start.
type Options struct {
	// BinDir holds the binaries; empty runs the build script (cheap when
	// they are cached, ≈13 minutes cold).
	BinDir string
	// KeepDir keeps the temporary directory (logs, etcd data) after Stop,
	// for debugging a failure.
	KeepDir bool
	// Log receives build progress and the timing line; nil means os.Stderr.
	Log io.Writer
	// APIServerFlags are added to kube-apiserver's flags, e.g. a feature
	// gate and the API version it serves.
	APIServerFlags []string
}

// ControlPlane is a running local control plane, or (from RunMain with
// CVMANAGER_TEST_KUBECONFIG) a handle on an external cluster.
type ControlPlane struct {
	opts       Options
	binDir     string
	dir        string
	ports      ports
	token      string
	admin      *rest.Config
	kubeconfig string
	external   bool

	mu      sync.Mutex
	procs   map[string]*proc
	stopped bool
}

type ports struct{ etcdClient, etcdPeer, apiserver int }

// adminToken authenticates the test's admin user (group system:masters).
// It is a constant because the apiserver listens on loopback only.
const adminToken = "cvmanager-test-admin-token"

// components in start order; Stop goes the other way.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Start builds the binaries if needed, starts every component and waits for
// the fake node to be Ready and untainted, so a test can create workloads
// at once. It prints one line with the time to API ready and node Ready.
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
	c := &ControlPlane{opts: opts, binDir: binDir, dir: dir, token: adminToken, procs: map[string]*proc{}}
	c.kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	begin := time.Now()
	if err := c.startAPI(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	apiReady := time.Since(begin)
	if err := c.startNode(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	fmt.Fprintf(opts.Log, "control plane: API ready in %s, node Ready in %s (%s)\n",
		apiReady.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond), dir)
	return c, nil
}

// startAPI brings up etcd and kube-apiserver, writes the admin kubeconfig
// and starts the controllers that only need the API.
func (c *ControlPlane) startAPI(ctx context.Context) error {
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
// progress to opts.Log: a cold build takes about 13 minutes on 2 cores and
// silence that long looks like a hang.
func resolveBinDir(ctx context.Context, opts Options) (string, error) {
	if opts.BinDir != "" {
		return opts.BinDir, nil
	}
	script := filepath.Join(repoRoot(), "hack", "build-control-plane.sh")
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = opts.Log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane binaries with %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// AdminConfig is a client config with cluster-admin rights (a static token
// in group system:masters). Each call returns a fresh copy.
func (c *ControlPlane) AdminConfig() *rest.Config { return rest.CopyConfig(c.admin) }

// AdminClient is a clientset with cluster-admin rights.
func (c *ControlPlane) AdminClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(c.AdminConfig())
}

// KubeconfigPath is the admin kubeconfig, for kubectl and for cvmanager
// binaries run as subprocesses.
func (c *ControlPlane) KubeconfigPath() string { return c.kubeconfig }

// BinDir holds the control plane's binaries, kubectl included. For an
// external cluster it is resolved (built if needed) on first use.
func (c *ControlPlane) BinDir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.binDir == "" {
		c.binDir, _ = resolveBinDir(context.Background(), c.opts)
	}
	return c.binDir
}

// Dir is the temporary directory with the components' logs and data.
func (c *ControlPlane) Dir() string { return c.dir }

// Kubectl runs kubectl against the control plane as admin and returns its
// combined output.
func (c *ControlPlane) Kubectl(args ...string) ([]byte, error) {
	bin := filepath.Join(c.BinDir(), "kubectl")
	cmd := exec.Command(bin, append([]string{"--kubeconfig", c.KubeconfigPath()}, args...)...)
	return cmd.CombinedOutput()
}

// Stop stops exactly the processes this control plane started (each in its
// own process group), newest first, and removes the temporary directory
// unless KeepDir. It is safe to call twice; for an external cluster it does
// nothing.
func (c *ControlPlane) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.external {
		return nil
	}
	c.stopped = true
	for i := len(components) - 1; i >= 0; i-- {
		if p := c.procs[components[i]]; p != nil {
			p.stop(10 * time.Second)
		}
	}
	if c.opts.KeepDir {
		return nil
	}
	return os.RemoveAll(c.dir)
}
