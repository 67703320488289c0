package release

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// Cluster is one control plane seen through admin clients.
type Cluster struct {
	Name       string
	Kubeconfig string
	Kube       kubernetes.Interface
	CVs        versioned.Interface
	ID         string
}

var (
	secondOnce sync.Once
	second     *controlplane.ControlPlane
	secondErr  error
)

// clusterA is the package's shared control plane.
func clusterA(t *testing.T) *Cluster {
	return newCluster(t, "A", controlplane.Shared())
}

// clusterB is a second, separate control plane (own etcd, apiserver and
// ports) with the CRDs installed, started once for the package and
// stopped by TestMain.
func clusterB(t *testing.T) *Cluster {
	t.Helper()
	secondOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		second, secondErr = controlplane.Start(ctx, controlplane.Options{BinDir: controlplane.Shared().BinDir()})
		if secondErr == nil {
			_, secondErr = kubetest.InstallCRDs(ctx, second.AdminConfig())
		}
	})
	if secondErr != nil {
		t.Fatalf("second control plane: %v", secondErr)
	}
	return newCluster(t, "B", second)
}

// stopSecond stops the second control plane if a test started it.
func stopSecond() {
	if second != nil {
		_ = second.Stop()
	}
}

func newCluster(t *testing.T, name string, cp *controlplane.ControlPlane) *Cluster {
	t.Helper()
	cfg := cp.AdminConfig()
	c := &Cluster{Name: name, Kubeconfig: cp.KubeconfigPath(),
		Kube: kubernetes.NewForConfigOrDie(cfg), CVs: versioned.NewForConfigOrDie(cfg)}
	id, err := state.ClusterID(context.Background(), c.Kube)
	e2eenv.Must(t, err)
	c.ID = id
	return c
}

// ensureNamespace creates ns in the cluster unless it exists.
func (c *Cluster) ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	_, err := c.Kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("cluster %s: creating namespace %s: %v", c.Name, ns, err)
	}
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
}

// startController runs the product's controller on the cluster for ns.
func (c *Cluster) startController(t *testing.T, ns string, resolver poller.ImageResolver) {
	t.Helper()
	ctrl := e2eenv.NewController(c.Kube, c.CVs, controller.Options{Namespace: ns, Resolver: resolver,
		Metrics: metrics.New(), ProgressInterval: e2eenv.ProgressInterval})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller on %s: %v", c.Name, err)
		}
	})
}

// getCV reads a CV from the API.
func (c *Cluster) getCV(ctx context.Context, ns, name string) (*cvv1.ContainerVersion, error) {
	return c.CVs.CvmanagerV1alpha1().ContainerVersions(ns).Get(ctx, name, metav1.GetOptions{})
}

// waitCV waits until the CV has status at digest with no rollout under way.
func (c *Cluster) waitCV(t *testing.T, ns, name, status, digest string, timeout time.Duration) *cvv1.ContainerVersion {
	t.Helper()
	var cv *cvv1.ContainerVersion
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		if cv, err = c.getCV(ctx, ns, name); err != nil {
			last = err
			return false, nil
		}
		last = fmt.Errorf("status %s at %s, rollout %v", cv.Status.CurrStatus, cv.Status.CurrDigest, cv.Status.Rollout)
		return cv.Status.CurrStatus == status && cv.Status.CurrDigest == digest && cv.Status.Rollout == nil, nil
	})
	if err != nil {
		t.Fatalf("cluster %s: CV %s/%s not %s at %s after %s (last: %v)", c.Name, ns, name, status, digest, timeout, last)
	}
	return cv
}

// deploymentImage is the first container's image of a Deployment.
func (c *Cluster) deploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := c.Kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	e2eenv.Must(t, err)
	return d.Spec.Template.Spec.Containers[0].Image
}
