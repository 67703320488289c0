package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"cvmanager.dev/cvmanager/test/kubetest"
)

// tunedBinDir returns a bin directory for test/controlplane that links to
// the cached control plane binaries, except kube-controller-manager, which
// becomes a one-line `exec` wrapper adding client QPS flags.
//
// Why: the controller-manager's own client defaults to 20 requests/s, and
// every Deployment cvmanager patches costs it two or three writes (new
// ReplicaSet, scale, status), so a burst of 1,000 rollouts would measure
// the controller-manager's client limiter, not cvmanager. The wrapper
// `exec`s, so the PID test/controlplane records is the real process.
// syncs sets its Deployment and ReplicaSet workers: with 10 (the control
// plane's setting for tests) it observed a burst's patched templates
// seconds after cvmanager had patched them all.
func tunedBinDir(ctx context.Context, dir string, qps, burst, syncs int) (string, error) {
	real, err := controlPlaneBins(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "cp-bin")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(real)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() == "kube-controller-manager" {
			continue
		}
		if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(out, e.Name())); err != nil {
			return "", err
		}
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\" --kube-api-qps=%d --kube-api-burst=%d --concurrent-deployment-syncs=%d --concurrent-replicaset-syncs=%d\n",
		filepath.Join(real, "kube-controller-manager"), qps, burst, syncs, syncs)
	return out, os.WriteFile(filepath.Join(out, "kube-controller-manager"), []byte(script), 0o755)
}

// controlPlaneBins runs the project's build script (instant when its cache
// is warm) and returns the directory it prints on its last line.
func controlPlaneBins(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(kubetest.RepoRoot(), "hack", "build-control-plane.sh"))
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-control-plane.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1], nil
}
