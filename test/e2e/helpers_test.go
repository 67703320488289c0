package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// controllerConfig is a client config for the ServiceAccount bound to the
// ClusterRole in deploy/: every controller in these tests runs under the
// shipped RBAC, never as admin, which proves the role is sufficient.
var controllerConfig *rest.Config

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}))
}

func setupOnce(t *testing.T) {
	t.Helper()
	if controllerConfig != nil {
		return
	}
	ctx := context.Background()
	if _, err := kubetest.InstallCRDs(ctx, controlplane.SharedConfig()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"00-namespace.yaml", "10-rbac.yaml"} {
		if out, err := controlplane.Shared().Kubectl("apply", "-f", filepath.Join(kubetest.RepoRoot(), "deploy", f)); err != nil {
			t.Fatalf("applying deploy/%s: %v\n%s", f, err, out)
		}
	}
	cfg, err := controlplane.Shared().ServiceAccountConfig(ctx, "cvmanager-system", "cvmanager")
	if err != nil {
		t.Fatal(err)
	}
	controllerConfig = cfg
}

type env struct {
	t        *testing.T
	ctx      context.Context
	ns       string
	kube     kubernetes.Interface
	cvClient versioned.Interface
}

func newEnv(t *testing.T) *env {
	t.Helper()
	setupOnce(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	admin := controlplane.SharedConfig()
	return &env{
		t: t, ctx: ctx, ns: controlplane.NewNamespace(t),
		kube:     kubernetes.NewForConfigOrDie(admin),
		cvClient: versioned.NewForConfigOrDie(admin),
	}
}

// startController runs a controller for the test's namespace under the
// shipped RBAC and returns a function that stops it and waits for it.
func (e *env) startController(resolver controllerResolver, edit ...func(*controller.Options)) (stop func()) {
	opts := controller.Options{
		Namespace: e.ns, Resolver: resolver, Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond,
	}
	for _, f := range edit {
		f(&opts)
	}
	ctrl := controller.New(kubernetes.NewForConfigOrDie(controllerConfig), versioned.NewForConfigOrDie(controllerConfig), opts)
	ctx, cancel := context.WithCancel(e.ctx)
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
			e.t.Errorf("controller: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the timeout passes.
func (e *env) eventually(timeout time.Duration, what string, cond func() (bool, error)) {
	e.t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		e.t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	}
}

func (e *env) createCV(cv *cvv1.ContainerVersion) {
	e.t.Helper()
	if _, err := e.cvClient.CvmanagerV1alpha1().ContainerVersions(e.ns).Create(e.ctx, cv, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating CV: %v", err)
	}
}

func (e *env) getCV(name string) *cvv1.ContainerVersion {
	e.t.Helper()
	cv, err := e.cvClient.CvmanagerV1alpha1().ContainerVersions(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("getting CV: %v", err)
	}
	return cv
}

// waitStatus waits until the CV reports status (and digest, when given).
func (e *env) waitStatus(name, status, digest string, timeout time.Duration) *cvv1.ContainerVersion {
	e.t.Helper()
	var cv *cvv1.ContainerVersion
	e.eventually(timeout, fmt.Sprintf("CV %s %s at %s", name, status, digest), func() (bool, error) {
		var err error
		cv, err = e.cvClient.CvmanagerV1alpha1().ContainerVersions(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ok := cv.Status.CurrStatus == status && cv.Status.Rollout == nil && (digest == "" || cv.Status.CurrDigest == digest)
		return ok, fmt.Errorf("status %s digest %s conditions %v", cv.Status.CurrStatus, cv.Status.CurrDigest, cv.Status.Conditions)
	})
	return cv
}

func (e *env) deploymentImage(name string) string {
	e.t.Helper()
	d, err := e.kube.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func (e *env) eventReasons(cvName string) map[string]int {
	e.t.Helper()
	events, err := e.kube.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + cvName})
	if err != nil {
		e.t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, ev := range events.Items {
		reasons[ev.Reason] += int(ev.Count)
	}
	return reasons
}

func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}, TerminationGracePeriodSeconds: ptr.To[int64](0)}
}

func labelsFor(app string) map[string]string { return map[string]string{"app": app} }

func newDeployment(ns, name, app, image string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labelsFor(app)},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(replicas),
			ProgressDeadlineSeconds: ptr.To[int32](600),
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{"app": app, "workload": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "workload": name}},
				Spec:       podSpec(image),
			},
		},
	}
}

func newStatefulSet(ns, name, app, image string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labelsFor(app)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](2),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": app, "workload": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "workload": name}},
				Spec:       podSpec(image),
			},
		},
	}
}

func newDaemonSet(ns, name, app, image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labelsFor(app)},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app, "workload": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "workload": name}},
				Spec:       podSpec(image),
			},
		},
	}
}

func newCronJob(ns, name, app, image string) *batchv1.CronJob {
	spec := podSpec(image)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labelsFor(app)},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 0 1 1 *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: spec},
			}},
		},
	}
}

// newCV is a CV following tag env-prod of repo, polling every 5 s.
func newCV(ns, name, repo string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	cv := kubetest.NewCV(ns, name)
	cv.Spec.ImageRepo = repo
	cv.Spec.Tag = "env-prod"
	cv.Spec.PollIntervalSeconds = 5
	cv.Spec.TimeoutSeconds = 60
	cv.Spec.VersionSyntax = "v[0-9]+(-[a-z]+)?"
	cv.Spec.Selector = &metav1.LabelSelector{MatchLabels: labelsFor(name)}
	cv.Spec.History = cvv1.HistorySpec{Enabled: true}
	for _, f := range edit {
		f(&cv.Spec)
	}
	return cv
}

func pinned(repo, version, digest string) string {
	return repo + ":" + version + "@" + digest
}

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
