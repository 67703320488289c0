// Package e2eenv is the shared fixture of the end-to-end test packages: a
// namespace on the package's real control plane, the controller run under
// the shipped RBAC, a real registry, and the builders and waits every
// scenario needs. Test packages call controlplane.RunMain from TestMain and
// New from each test.
package e2eenv

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
)

var (
	setup sync.Once
	// controllerConfig is a client config for the ServiceAccount bound to
	// the ClusterRole in deploy/: every controller in these tests runs under
	// the shipped RBAC, never as admin, which proves the role is sufficient.
	controllerConfig *rest.Config
	setupErr         error
)

// ControllerConfig is the client config of the controller's ServiceAccount.
func ControllerConfig(t testing.TB) *rest.Config {
	t.Helper()
	setup.Do(func() { controllerConfig, setupErr = installOnce(context.Background()) })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return controllerConfig
}

// installOnce installs the CRDs and the shipped namespace and RBAC.
func installOnce(ctx context.Context) (*rest.Config, error) {
	if _, err := kubetest.InstallCRDs(ctx, controlplane.SharedConfig()); err != nil {
		return nil, err
	}
	for _, f := range []string{"00-namespace.yaml", "10-rbac.yaml"} {
		if out, err := controlplane.Shared().Kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", f)); err != nil {
			return nil, fmt.Errorf("applying deploy/%s: %v\n%s", f, err, out)
		}
	}
	return controlplane.Shared().ServiceAccountConfig(ctx, "cvmanager-system", "cvmanager")
}

// Env is one test's namespace with admin clients for arranging and
// asserting; the controller under test uses the ServiceAccount instead.
type Env struct {
	T        *testing.T
	Ctx      context.Context
	NS       string
	Kube     kubernetes.Interface
	CVClient versioned.Interface
}

// New gives the test its own namespace; the context ends after 3 minutes.
func New(t *testing.T) *Env {
	t.Helper()
	ControllerConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	admin := controlplane.SharedConfig()
	return &Env{
		T: t, Ctx: ctx, NS: controlplane.NewNamespace(t),
		Kube:     kubernetes.NewForConfigOrDie(admin),
		CVClient: versioned.NewForConfigOrDie(admin),
	}
}

// Options are the controller options tests start from: the test's
// namespace and a short progress interval.
func (e *Env) Options(resolver poller.ImageResolver) controller.Options {
	return controller.Options{
		Namespace: e.NS, Resolver: resolver, Metrics: metrics.New(), ProgressInterval: ProgressInterval,
	}
}

// StartController runs a controller for the test's namespace under the
// shipped RBAC and returns a function that stops it and waits for it.
func (e *Env) StartController(resolver poller.ImageResolver, edit ...func(*controller.Options)) (stop func()) {
	opts := e.Options(resolver)
	for _, f := range edit {
		f(&opts)
	}
	cfg := ControllerConfig(e.T)
	ctrl := NewController(kubernetes.NewForConfigOrDie(cfg), versioned.NewForConfigOrDie(cfg), opts)
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.T.Errorf("controller: %v", err)
		}
	}
	e.T.Cleanup(stop)
	return stop
}

// Eventually polls cond until it holds or the timeout passes; the error
// cond returns last is printed on timeout to say what was seen instead.
func (e *Env) Eventually(timeout time.Duration, what string, cond func() (bool, error)) {
	e.T.Helper()
	var last error
	err := wait.PollUntilContextTimeout(e.Ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		e.T.Fatalf("timed out after %s waiting for %s (last: %v)", timeout, what, last)
	}
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// CreateCV creates cv in the test's namespace, stamped with the admin's
// identity as its author unless it names one (Stamp).
func (e *Env) CreateCV(cv *cvv1.ContainerVersion) {
	e.T.Helper()
	e.Stamp(cv)
	if _, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, cv, metav1.CreateOptions{}); err != nil {
		e.T.Fatalf("creating CV: %v", err)
	}
}

// GetCV reads a CV from the API (not a cache).
func (e *Env) GetCV(name string) *cvv1.ContainerVersion {
	e.T.Helper()
	cv, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
	if err != nil {
		e.T.Fatalf("getting CV: %v", err)
	}
	return cv
}

// PendingRequests counts the requests (trigger, webhook, clear-failed)
// for the CV name that the leader has not acted on and deleted yet.
func (e *Env) PendingRequests(name string) int {
	e.T.Helper()
	list, err := e.CVClient.CvmanagerV1alpha1().ContainerVersionRequests(e.NS).List(e.Ctx, metav1.ListOptions{})
	if err != nil {
		e.T.Fatalf("listing requests: %v", err)
	}
	n := 0
	for _, r := range list.Items {
		if r.Spec.ContainerVersion == name {
			n++
		}
	}
	return n
}

// WaitStatus waits until the CV reports status with no rollout under way
// (and digest, when given).
func (e *Env) WaitStatus(name, status, digest string, timeout time.Duration) *cvv1.ContainerVersion {
	e.T.Helper()
	var cv *cvv1.ContainerVersion
	e.Eventually(timeout, fmt.Sprintf("CV %s %s at %s", name, status, digest), func() (bool, error) {
		var err error
		cv, err = e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ok := cv.Status.CurrStatus == status && cv.Status.Rollout == nil && (digest == "" || cv.Status.CurrDigest == digest)
		return ok, fmt.Errorf("status %s digest %s conditions %v", cv.Status.CurrStatus, cv.Status.CurrDigest, cv.Status.Conditions)
	})
	return cv
}

// DeploymentImage is the first container's image of a Deployment.
func (e *Env) DeploymentImage(name string) string {
	e.T.Helper()
	d, err := e.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
	if err != nil {
		e.T.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// DeploymentGeneration is a Deployment's metadata.generation: it grows with
// every spec change, so an unchanged generation proves no patch happened.
func (e *Env) DeploymentGeneration(name string) int64 {
	e.T.Helper()
	d, err := e.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
	Must(e.T, err)
	return d.Generation
}

// EventReasons counts the Events recorded on a CV by reason.
func (e *Env) EventReasons(cvName string) map[string]int {
	e.T.Helper()
	events, err := e.Kube.CoreV1().Events(e.NS).List(e.Ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + cvName})
	Must(e.T, err)
	reasons := map[string]int{}
	for _, ev := range events.Items {
		reasons[ev.Reason] += int(ev.Count)
	}
	return reasons
}

// WaitEvents waits until the CV has at least the given number of Events
// of each reason and returns the counts of all reasons. Events are written
// by the event broadcaster after the status write the test saw, so a
// single read right after it can come too early.
func (e *Env) WaitEvents(cvName string, atLeast map[string]int) map[string]int {
	e.T.Helper()
	var reasons map[string]int
	e.Eventually(10*time.Second, "Events of "+cvName, func() (bool, error) {
		reasons = e.EventReasons(cvName)
		for reason, n := range atLeast {
			if reasons[reason] < n {
				return false, fmt.Errorf("events %v, want at least %v", reasons, atLeast)
			}
		}
		return true, nil
	})
	return reasons
}

// History reads a CV's history records, newest first, as the CV history
// page shows them: its own history and its records in the histories of the
// workloads it selects (one record per workload and rollout).
func (e *Env) History(cvName string) []history.Record {
	e.T.Helper()
	cv := e.GetCV(cvName)
	selector, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	Must(e.T, err)
	workloads, err := dashboard.APISource{Ctx: e.Ctx, Kube: e.Kube, CVClient: e.CVClient}.Workloads(e.NS, selector)
	Must(e.T, err)
	names := make([]string, 0, len(workloads))
	for _, w := range workloads {
		names = append(names, w.Name())
	}
	records, err := history.CVHistory(e.Ctx, history.NewStore(e.Kube), cv, names)
	Must(e.T, err)
	return records
}

// WorkloadHistory reads the records of a workload's "<name>.history".
func (e *Env) WorkloadHistory(workloadName string) []history.Record {
	e.T.Helper()
	records, err := history.NewStore(e.Kube).List(e.Ctx, e.NS, history.WorkloadConfigMapName(workloadName))
	Must(e.T, err)
	return records
}

// AssertCondition checks a condition's status on cv.
func AssertCondition(t *testing.T, cv *cvv1.ContainerVersion, condType string, want metav1.ConditionStatus) {
	t.Helper()
	for _, c := range cv.Status.Conditions {
		if c.Type == condType {
			if c.Status != want {
				t.Errorf("condition %s = %s (%s: %s), want %s", condType, c.Status, c.Reason, c.Message, want)
			}
			return
		}
	}
	t.Errorf("condition %s missing: %+v", condType, cv.Status.Conditions)
}

// ConditionIs reports whether cv has condType True with reason.
func ConditionIs(cv *cvv1.ContainerVersion, condType, reason string) bool {
	for _, c := range cv.Status.Conditions {
		if c.Type == condType && c.Reason == reason && c.Status == metav1.ConditionTrue {
			return true
		}
	}
	return false
}

var (
	adminOnce sync.Once
	adminID   authz.Identity
	adminErr  error
)

// Stamp records the test's admin as cv's author, as `cvmanager cv stamp`
// would: the author annotations the shipped admission policy requires and
// the controller's author checks read (an admin may do everything). A CV
// that already names an author is left alone.
func (e *Env) Stamp(cv *cvv1.ContainerVersion) {
	e.T.Helper()
	if _, ok := authz.AuthorOf(cv); ok {
		return
	}
	adminOnce.Do(func() { adminID, adminErr = authz.WhoAmI(context.Background(), e.Kube) })
	Must(e.T, adminErr)
	authz.Stamp(cv, adminID)
}
