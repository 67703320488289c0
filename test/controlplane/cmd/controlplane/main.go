// Command controlplane starts the same local control plane the tests use
// (etcd, kube-apiserver, controller-manager, scheduler, kwok with one fake
// node) for manual poking and demos, and stops it on SIGINT or SIGTERM:
//
//	go run ./test/controlplane/cmd/controlplane --kubeconfig-out /tmp/cv.kubeconfig
//	KUBECONFIG=/tmp/cv.kubeconfig kubectl get nodes
//
// Tests can reuse it: CVMANAGER_TEST_KUBECONFIG=/tmp/cv.kubeconfig go test ./...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"cvmanager.dev/cvmanager/test/controlplane"
)

func main() {
	out := flag.String("kubeconfig-out", "", "also write the admin kubeconfig here (removed again on exit)")
	keep := flag.Bool("keep-dir", false, "keep the temporary directory (logs, etcd data) after stopping")
	binDir := flag.String("bin-dir", "", "directory with the binaries (default: run hack/build-control-plane.sh)")
	flag.Parse()
	if err := run(*out, *keep, *binDir); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

// run starts the control plane and blocks until a signal; a signal during
// the start (a cold build takes minutes) cancels it cleanly too.
func run(out string, keep bool, binDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: binDir, KeepDir: keep})
	if err != nil {
		return err
	}
	defer cp.Stop()
	path := cp.KubeconfigPath()
	if out != "" {
		if path, err = filepath.Abs(out); err != nil {
			return err
		}
		if err := cp.WriteKubeconfig(cp.AdminConfig(), path); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	fmt.Printf("export KUBECONFIG=%s\n", path)
	fmt.Fprintf(os.Stderr, "control plane up (logs and pids in %s); Ctrl-C to stop\n", cp.Dir())
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping")
	return nil
}
