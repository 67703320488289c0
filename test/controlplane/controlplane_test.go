package controlplane

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m, Options{})) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func poll(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func deployment(ns, image string, deadline int32) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To(deadline),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
		},
	}
}

// TestDeploymentRollsOutAndUnreadyMarkerStalls: pods run on the kwok node;
// an image change rolls out; an image with the "unready" marker never gets
// Ready and the Deployment reports ProgressDeadlineExceeded.
func TestDeploymentRollsOutAndUnreadyMarkerStalls(t *testing.T) {
	ctx, ns := ctxFor(t), NewNamespace(t)
	deployments := Shared().AdminClient().AppsV1().Deployments(ns)
	if _, err := deployments.Create(ctx, deployment(ns, "app:v1", 5), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rolledOut := func(image string) func() bool {
		return func() bool {
			d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
			return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 &&
				d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2 && d.Spec.Template.Spec.Containers[0].Image == image
		}
	}
	poll(t, ctx, "v1 available", rolledOut("app:v1"))
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:v2"}]}}}}`)
	if _, err := deployments.Patch(ctx, "web", "application/strategic-merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "v2 rolled out", rolledOut("app:v2"))

	patch = []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:v3-unready"}]}}}}`)
	if _, err := deployments.Patch(ctx, "web", "application/strategic-merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "ProgressDeadlineExceeded", func() bool {
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
				return true
			}
		}
		return false
	})
	pods, err := Shared().AdminClient().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stuck := 0
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff" && cs.Image == "app:v3-unready" {
				stuck++
			}
		}
	}
	if stuck == 0 {
		t.Errorf("no pod of the unready image waits in ImagePullBackOff")
	}
}

// TestJobsCompleteOrFailByMarker: a Job completes; with the "failjob"
// marker and no retries it fails.
func TestJobsCompleteOrFailByMarker(t *testing.T) {
	ctx, ns := ctxFor(t), NewNamespace(t)
	jobs := Shared().AdminClient().BatchV1().Jobs(ns)
	for name, image := range map[string]string{"ok": "migrate:v1", "bad": "migrate:v1-failjob"} {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "job", Image: image}}}},
		}}
		if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	hasCondition := func(name string, want batchv1.JobConditionType) func() bool {
		return func() bool {
			j, err := jobs.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, c := range j.Status.Conditions {
				if c.Type == want && c.Status == corev1.ConditionTrue {
					return true
				}
			}
			return false
		}
	}
	poll(t, ctx, "job ok Complete", hasCondition("ok", batchv1.JobComplete))
	poll(t, ctx, "job bad Failed", hasCondition("bad", batchv1.JobFailed))
}

// TestServiceAccountConfigIsBoundByRBAC: a fresh ServiceAccount is
// forbidden to list pods until a Role grants it.
func TestServiceAccountConfigIsBoundByRBAC(t *testing.T) {
	ctx, ns := ctxFor(t), NewNamespace(t)
	cfg, err := Shared().ServiceAccountConfig(ctx, ns, "reader")
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	if _, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("want Forbidden before the RoleBinding, got %v", err)
	}
	admin := Shared().AdminClient()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pod-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "reader"}}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "list allowed after binding", func() bool {
		_, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	})
}

// TestRestartAndStop: a separate control plane survives an apiserver
// restart, and Stop leaves none of its processes running.
func TestRestartAndStop(t *testing.T) {
	ctx := ctxFor(t)
	cp, err := Start(ctx, Options{BinDir: Shared().BinDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	client := cp.AdminClient()
	if err := cp.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "API answers after restart", func() bool {
		_, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	pids := cp.PIDs()
	if len(pids) != 5 {
		t.Fatalf("want 5 recorded processes, got %v", pids)
	}
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
}
