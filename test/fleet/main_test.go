// Package fleet tests cvmanager across two real control planes in one run:
// a cross-cluster promote refused while the source soaks and done after,
// the promotion source read through a kubeconfig Secret under a
// least-privilege reader role (and refused when unreachable), and
// `status --contexts` reading both clusters (and a dead one).
package fleet

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	if second != nil {
		_ = second.Stop()
	}
	os.Exit(code)
}

var (
	secondOnce sync.Once
	second     *controlplane.ControlPlane
	secondErr  error
)

// cluster is one control plane seen through admin clients.
type cluster struct {
	name string
	cp   *controlplane.ControlPlane
	kube kubernetes.Interface
	cvs  versioned.Interface
}

func newCluster(name string, cp *controlplane.ControlPlane) *cluster {
	cfg := cp.AdminConfig()
	return &cluster{name: name, cp: cp, kube: kubernetes.NewForConfigOrDie(cfg), cvs: versioned.NewForConfigOrDie(cfg)}
}

// prodCluster is a second control plane (own etcd, apiserver, ports) with
// the CRDs, started once for the package; the shared one is staging.
func prodCluster(t *testing.T) *cluster {
	t.Helper()
	secondOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		second, secondErr = controlplane.Start(ctx, controlplane.Options{BinDir: controlplane.Shared().BinDir()})
		if secondErr == nil {
			_, secondErr = kubetest.InstallCRDs(ctx, second.AdminConfig())
		}
	})
	e2eenv.Must(t, secondErr)
	return newCluster("prod", second)
}
