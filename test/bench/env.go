package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/kubeclient"
	"cvmanager.dev/cvmanager/pkg/version"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// env is everything the scales share: one control plane, one registry
// behind a counting proxy, the controller's identity and binary, and the
// bench's own watches on Deployments and CVs.
type env struct {
	cfg        *config
	dir        string
	cp         *controlplane.ControlPlane
	reg        *localregistry.Registry
	proxy      *countingProxy
	admin      *rest.Config
	kube       kubernetes.Interface
	cvs        versioned.Interface
	kubeconfig string // the controller's ServiceAccount
	keysDir    string
	triggerKey string
	bin        string
	track      *tracker
	current    *ctrlProc // the controller now running, for triggers
	cancel     context.CancelFunc
}

// startEnv brings up the shared pieces; on failure it stops what it started.
func startEnv(ctx context.Context, cfg *config) (e *env, err error) {
	dir, err := os.MkdirTemp("", "cvmanager-bench-")
	if err != nil {
		return nil, err
	}
	e = &env{cfg: cfg, dir: dir}
	started := e // the failure returns below set e to nil
	defer func() {
		if err != nil {
			started.stop()
		}
	}()
	if e.bin, err = buildController(ctx, cfg.bin, dir); err != nil {
		return nil, err
	}
	binDir, err := tunedBinDir(ctx, dir, cfg.kcmQPS, cfg.kcmBurst, cfg.kcmSyncs)
	if err != nil {
		return nil, err
	}
	say("starting the control plane (kube-controller-manager --kube-api-qps %d --kube-api-burst %d --concurrent-deployment-syncs %d)", cfg.kcmQPS, cfg.kcmBurst, cfg.kcmSyncs)
	if e.cp, err = controlplane.Start(ctx, controlplane.Options{BinDir: binDir, Log: os.Stderr}); err != nil {
		return nil, err
	}
	say("control plane pids: %v", e.cp.PIDs())
	if err := e.startRegistry(); err != nil {
		return nil, err
	}
	if err := e.install(ctx); err != nil {
		return nil, err
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.track = startTracker(watchCtx, e.kube, e.cvs)
	return e, nil
}

// buildController builds the product's own binary, as a user runs it, so
// RSS, CPU and goroutines are cvmanager's and not the bench's.
func buildController(ctx context.Context, prebuilt, dir string) (string, error) {
	if prebuilt != "" {
		return prebuilt, nil
	}
	bin := filepath.Join(dir, "cvmanager")
	say("building cvmanager")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", version.BuildTags, "-o", bin, "./cmd/cvmanager")
	cmd.Dir = kubetest.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cvmanager: %v\n%s", err, out)
	}
	return bin, binproc.FlushToDisk(bin)
}

func (e *env) startRegistry() error {
	var err error
	if e.reg, err = localregistry.Start("127.0.0.1:0"); err != nil {
		return err
	}
	e.proxy, err = startProxy(e.reg.Host)
	if err != nil {
		return err
	}
	say("registry %s behind counting proxy %s", e.reg.Host, e.proxy.host)
	return nil
}

// install applies the CRDs and shipped RBAC, writes a kubeconfig for the
// cvmanager ServiceAccount (the controller runs with least privilege, as
// deployed) and an API key for POST /v1/trigger.
func (e *env) install(ctx context.Context) error {
	e.admin = e.cp.AdminConfig()
	e.admin.QPS, e.admin.Burst = 2000, 4000 // the bench's own writes must not be the bottleneck
	// The bench watches workloads as a cluster's controllers do, in
	// protobuf, so the apiserver encodes no event in JSON for the harness
	// alone (since 2026-12-07 22:30; earlier runs watched in JSON).
	e.kube = kubernetes.NewForConfigOrDie(kubeclient.Protobuf(e.admin))
	e.cvs = versioned.NewForConfigOrDie(e.admin)
	if _, err := kubetest.InstallCRDs(ctx, e.admin); err != nil {
		return err
	}
	for _, f := range []string{"00-namespace.yaml", "10-rbac.yaml"} {
		if out, err := e.cp.Kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", f)); err != nil {
			return fmt.Errorf("applying deploy/%s: %v\n%s", f, err, out)
		}
	}
	sa, err := e.cp.ServiceAccountConfig(ctx, "cvmanager-system", "cvmanager")
	if err != nil {
		return err
	}
	e.kubeconfig = filepath.Join(e.dir, "cvmanager.kubeconfig")
	if err := e.cp.WriteKubeconfig(sa, e.kubeconfig); err != nil {
		return err
	}
	e.keysDir = filepath.Join(e.dir, "trigger-keys")
	e.triggerKey = strings.Repeat("b3nch", 8)
	if err := os.MkdirAll(e.keysDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.keysDir, "bench"), []byte(e.triggerKey), 0o600)
}

// stop ends exactly what startEnv started, newest first.
func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
	}
	if e.proxy != nil {
		e.proxy.close()
	}
	if e.reg != nil {
		_ = e.reg.Close()
	}
	if e.cp != nil {
		if err := e.cp.Stop(); err != nil {
			say("stopping the control plane: %v", err)
		}
	}
	_ = os.RemoveAll(e.dir)
}

// settle waits, at most limit, until every rollout an earlier scenario
// started has finished, so each scenario starts from steady state rather
// than behind the previous one's rollouts. It returns the seconds waited.
func (e *env) settle(ctx context.Context, limit time.Duration) float64 {
	start := time.Now()
	if !waitFor(ctx, limit, e.track.idle) {
		say("still %d rollouts unfinished after %s; going on", e.track.unfinished(), limit)
	}
	return since(start)
}

// quiet waits until kube-controller-manager has caught up with the
// Deployments just created (at most a few updates in 5 s), so the steady
// interval measures cvmanager idle rather than the control plane still
// writing statuses it watches. It returns the seconds waited.
func (e *env) quiet(ctx context.Context, limit time.Duration) float64 {
	start := time.Now()
	last := e.track.events()
	calm := func() bool {
		if !sleepCtx(ctx, 5*time.Second) {
			return true
		}
		now := e.track.events()
		quiet := now-last <= 5
		last = now
		return quiet
	}
	if !waitFor(ctx, limit, calm) {
		say("Deployments still changing after %s; going on", limit)
	}
	return since(start)
}

// waitFor polls cond every 100 ms until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
