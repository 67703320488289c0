// Command demo is `make demo`: a local control plane and registry, the
// controller running under its shipped RBAC, a sample Deployment with a
// ContainerVersion, and two image pushes whose rollouts are shown live.
// Ctrl-C stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
	"cvmanager.dev/cvmanager/test/localregistry"
)

const (
	namespace = "demo"
	app       = "web"
)

func main() {
	port := flag.Int("port", 8081, "dashboard port on 127.0.0.1 (0 picks a free one)")
	exitAfter := flag.Bool("exit", false, "exit after the second rollout instead of waiting for Ctrl-C")
	flag.Parse()
	klog.SetOutput(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *port, *exitAfter); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, port int, exitAfter bool) error {
	started := time.Now()
	say("starting a local control plane (the first run builds it: ~15 min with progress below)")
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return err
	}
	defer cp.Stop()
	reg, err := localregistry.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer reg.Close()
	say("registry at %s, kubeconfig %s", reg.Host, cp.KubeconfigPath())

	cfg, err := install(ctx, cp)
	if err != nil {
		return err
	}
	ctrl, addr, stopController, err := startController(ctx, cfg, reg, port)
	if err != nil {
		return err
	}
	// Deferred last, so it runs first: the controller stops before the
	// registry and the control plane it talks to go away.
	defer stopController()
	say("controller running under the cvmanager ServiceAccount; ready %s after start", time.Since(started).Round(100*time.Millisecond))
	say("dashboard: http://%s/v1/cv/workloads?format=html&reload=true", addr)
	return showRollouts(ctx, cp, reg, ctrl, exitAfter)
}

// install applies the CRD and the shipped RBAC, and returns a client config
// for the cvmanager ServiceAccount so the demo runs with least privilege.
func install(ctx context.Context, cp *controlplane.ControlPlane) (*controlplaneConfig, error) {
	if _, err := kubetest.InstallCRDs(ctx, cp.AdminConfig()); err != nil {
		return nil, err
	}
	for _, f := range []string{"00-namespace.yaml", "10-rbac.yaml"} {
		if out, err := cp.Kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", f)); err != nil {
			return nil, fmt.Errorf("applying deploy/%s: %v\n%s", f, err, out)
		}
	}
	sa, err := cp.ServiceAccountConfig(ctx, "cvmanager-system", "cvmanager")
	if err != nil {
		return nil, err
	}
	return &controlplaneConfig{admin: cp.AdminClient(), sa: sa}, nil
}

// startController runs the controller and its HTTP server; stop cancels
// both and waits for the controller to return.
func startController(ctx context.Context, cfg *controlplaneConfig, reg *localregistry.Registry, port int) (ctrl *controller.Controller, addr string, stop func(), err error) {
	m := metrics.New()
	resolver, err := poller.New(poller.Options{InsecureRegistries: []string{reg.Host}}, m.Registry)
	if err != nil {
		return nil, "", nil, err
	}
	kube := kubernetes.NewForConfigOrDie(cfg.sa)
	cvClient := versioned.NewForConfigOrDie(cfg.sa)
	factories := controller.NewFactories(kube, cvClient, controller.Scope{})
	ctrl = controller.New(kube, cvClient, factories.Informers(), controller.NewRecorder(kube, controller.EventSenders), clock.RealClock{},
		controller.Options{Resolver: resolver, Metrics: m, ProgressInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	factories.Start(ctx.Done())
	go func() { defer close(stopped); _ = ctrl.Run(ctx); factories.Shutdown() }()
	stop = func() { cancel(); <-stopped }
	mux := server.NewMux(m.Registry, server.Readiness{Synced: ctrl.HasSynced})
	dashboard.ForController(factories.Informers().CVs.Lister(), factories.WorkloadListers(), kube).Register(mux)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0") // the port is taken: any free one
		if err != nil {
			stop()
			return nil, "", nil, err
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return ctrl, ln.Addr().String(), stop, nil
}

type controlplaneConfig struct {
	admin kubernetes.Interface
	sa    *rest.Config
}

func showRollouts(ctx context.Context, cp *controlplane.ControlPlane, reg *localregistry.Registry, _ *controller.Controller, exitAfter bool) error {
	admin := cp.AdminClient()
	cvs := versioned.NewForConfigOrDie(cp.AdminConfig()).CvmanagerV1alpha1().ContainerVersions(namespace)
	repo := reg.Repo("demo/" + app)
	d1, err := reg.Push("demo/"+app, "3f2a9c1", "env-prod")
	if err != nil {
		return err
	}
	say("pushed %s:3f2a9c1 (%s) and tagged it env-prod", repo, d1[:19])
	if err := createWorkload(ctx, admin, repo); err != nil {
		return err
	}
	cv := demoCV(repo)
	if _, err := cvs.Create(ctx, cv, metav1.CreateOptions{}); err != nil {
		return err
	}
	say("created Deployment %s/%s (3 replicas) and ContainerVersion %s following %s:env-prod", namespace, app, app, repo)
	if err := watchRollout(ctx, admin, cvs, d1); err != nil {
		return err
	}

	d2, err := reg.Push("demo/"+app, "8be01d7", "env-prod")
	if err != nil {
		return err
	}
	say("CI moved env-prod to a new build 8be01d7 (%s); the next poll (≤5 s) picks it up", d2[:19])
	if err := watchRollout(ctx, admin, cvs, d2); err != nil {
		return err
	}
	records, err := history.NewStore(admin).List(ctx, namespace, history.WorkloadConfigMapName(app))
	if err != nil {
		return err
	}
	for _, r := range records {
		say("history: %s %s → %s (%s, %.1fs, trigger %s)", r.Outcome, orNone(r.FromVersion), r.ToVersion, r.Workload, r.DurationSeconds, r.Trigger)
	}
	out, _ := cp.Kubectl("get", "cv", "-n", namespace)
	fmt.Printf("\n$ kubectl get cv -n %s\n%s\n", namespace, out)
	if exitAfter {
		return nil
	}
	say("press Ctrl-C to stop everything this demo started")
	<-ctx.Done()
	return ctx.Err()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func createWorkload(ctx context.Context, kube kubernetes.Interface, repo string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	labels := map[string]string{"app": app}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: repo + ":initial"}}},
			},
		},
	}
	_, err := kube.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{})
	return err
}

func demoCV(repo string) *cvv1.ContainerVersion {
	return &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app},
		Spec: cvv1.ContainerVersionSpec{
			ImageRepo: repo, Tag: "env-prod", PollIntervalSeconds: 5, TimeoutSeconds: 120,
			Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Container: cvv1.ContainerSpec{Name: app},
			History:   cvv1.HistorySpec{Enabled: true},
			Rollback:  cvv1.RollbackSpec{Enabled: true},
		},
	}
}

// watchRollout prints each change of the CV's status and the Deployment's
// pods until the CV reports Success at digest.
func watchRollout(ctx context.Context, kube kubernetes.Interface, cvs cvClient, digest string) error {
	last := ""
	start := time.Now()
	for {
		cv, err := cvs.Get(ctx, app, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d, err := kube.AppsV1().Deployments(namespace).Get(ctx, app, metav1.GetOptions{})
		if err != nil {
			return err
		}
		line := fmt.Sprintf("cv %s: %-11s version %-8s | deployment: %d/%d updated, %d available",
			app, orNone(cv.Status.CurrStatus), orNone(cv.Status.CurrVersion),
			d.Status.UpdatedReplicas, ptr.Deref(d.Spec.Replicas, 1), d.Status.AvailableReplicas)
		if line != last {
			say("%s", line)
			last = line
		}
		if cv.Status.CurrDigest == digest && cv.Status.Rollout == nil {
			if cv.Status.CurrStatus == cvv1.StatusSuccess {
				say("rolled out in %s: image %s", time.Since(start).Round(100*time.Millisecond), d.Spec.Template.Spec.Containers[0].Image)
				return nil
			}
			if cv.Status.CurrStatus == cvv1.StatusFailed {
				return fmt.Errorf("rollout failed: %v", cv.Status.Conditions)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

type cvClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*cvv1.ContainerVersion, error)
}
