package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var shared *ControlPlane

// RunMain is for TestMain: it starts one control plane for the test package,
// runs the tests and stops it. When CVMANAGER_TEST_KUBECONFIG names an admin
// kubeconfig, that cluster is used instead and nothing is started. A control
// plane that cannot start fails the package loudly; it is never skipped.
//
// With -short the package's tests are not run: they all need the cluster.
func RunMain(m *testing.M, opts Options) int {
	flag.Parse()
	if testing.Short() {
		// Say so where `go test` shows it: no test runs, so the package's
		// line reads "ok … [no tests to run]" rather than a bare "ok", and
		// -v prints why.
		fmt.Println("skipped: needs a control plane (run without -short)")
		if err := flag.Set("test.run", "^$"); err != nil {
			fmt.Fprintln(os.Stderr, "cannot select no tests:", err)
			return 1
		}
		return m.Run()
	}
	if path := os.Getenv("CVMANAGER_TEST_KUBECONFIG"); path != "" {
		return runWithExisting(m, path, opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	cp, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the test control plane:", err)
		return 1
	}
	shared = cp
	defer stopOnSignal(cp)()
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
	}
	return code
}

// stopOnSignal stops the control plane when `go test` is interrupted
// (Ctrl-C), so an aborted run leaves no etcd or apiserver behind; the
// components run in their own process groups and do not get the SIGINT.
// Calling the returned function removes the handler.
func stopOnSignal(cp *ControlPlane) (release func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "%s: stopping the test control plane\n", sig)
			_ = cp.Stop()
			os.Exit(2)
		case <-done:
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// runWithExisting runs the tests against the cluster of an admin
// kubeconfig (e.g. one left up by cmd/controlplane), starting nothing.
func runWithExisting(m *testing.M, path string, opts Options) int {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "CVMANAGER_TEST_KUBECONFIG:", err)
		return 1
	}
	cfg.QPS, cfg.Burst = 100, 200
	shared = &ControlPlane{opts: opts, binDir: opts.BinDir, admin: cfg, kubeconfig: path, external: true}
	return m.Run()
}

// Shared is the package's control plane started by RunMain.
func Shared() *ControlPlane {
	if shared == nil {
		panic("controlplane.Shared: call controlplane.RunMain from TestMain")
	}
	return shared
}

// SharedConfig is an admin client config for the package's control plane.
func SharedConfig() *rest.Config { return Shared().AdminConfig() }

var unsafeChars = regexp.MustCompile(`[^a-z0-9-]+`)

// NewNamespace creates a namespace unique to the test and deletes it at
// cleanup without waiting (deletion takes ~10 s and nothing depends on it).
func NewNamespace(t testing.TB) string {
	t.Helper()
	base := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := strings.Trim(fmt.Sprintf("t-%s-%s", strings.Trim(base, "-"), hex.EncodeToString(suffix)), "-")
	client := Shared().AdminClient()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}
