package controlplane

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// poll waits for cond and returns how long it took, for the timing logs.
func poll(t *testing.T, ctx context.Context, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
	return time.Since(start)
}

func deployment(ns, image string) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](5),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
		},
	}
}

// webDeployment creates the 2-replica Deployment "web" and waits until it
// is Available, returning the time that took.
func webDeployment(t *testing.T, ctx context.Context, client kubernetes.Interface, ns, image string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, deployment(ns, image), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, image+" available", rolledOut(ctx, client, ns, image))
	return time.Since(start)
}

func rolledOut(ctx context.Context, client kubernetes.Interface, ns, image string) func() bool {
	return func() bool {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 &&
			d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2 && d.Spec.Template.Spec.Containers[0].Image == image
	}
}

func setImage(t *testing.T, ctx context.Context, client kubernetes.Interface, ns, image string) {
	t.Helper()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + image + `"}]}}}}`
	if _, err := client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentBecomesAvailable: the scheduler places the pods on the kwok
// node, kwok makes them Ready and reports imageID = image.
func TestDeploymentBecomesAvailable(t *testing.T) {
	ctx, ns, client := ctxFor(t), NewNamespace(t), Shared().AdminClient()
	image := "127.0.0.1:5000/app:v1@sha256:" + strings.Repeat("a", 64)
	t.Logf("deployment Available %s after creation", webDeployment(t, ctx, client, ns, image).Round(time.Millisecond))
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != NodeName || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s: node %q phase %s, want %s Running", p.Name, p.Spec.NodeName, p.Status.Phase, NodeName)
		}
		if cs := p.Status.ContainerStatuses; len(cs) != 1 || !cs[0].Ready || cs[0].ImageID != image {
			t.Errorf("pod %s: container statuses %+v, want one Ready with imageID %s", p.Name, cs, image)
		}
	}
}

// TestImageChangeRollsOut: a new image gets a new ReplicaSet that becomes
// available while the old one is scaled to zero.
func TestImageChangeRollsOut(t *testing.T) {
	ctx, ns, client := ctxFor(t), NewNamespace(t), Shared().AdminClient()
	webDeployment(t, ctx, client, ns, "app:v1")
	setImage(t, ctx, client, ns, "app:v2")
	took := poll(t, ctx, "v2 rolled out", rolledOut(ctx, client, ns, "app:v2"))
	t.Logf("image change rolled out in %s", took.Round(time.Millisecond))
	sets, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range sets.Items {
		want := int32(0)
		if rs.Spec.Template.Spec.Containers[0].Image == "app:v2" {
			want = 2
		}
		if rs.Status.AvailableReplicas != want || *rs.Spec.Replicas != want {
			t.Errorf("ReplicaSet %s (%s): %d/%d available, want %d", rs.Name,
				rs.Spec.Template.Spec.Containers[0].Image, rs.Status.AvailableReplicas, *rs.Spec.Replicas, want)
		}
	}
	if len(sets.Items) != 2 {
		t.Errorf("want 2 ReplicaSets, got %d", len(sets.Items))
	}
}

// TestUnreadyMarkerExceedsProgressDeadline: pods of an image containing
// "unready" wait in ImagePullBackOff, so the rollout stalls and the
// Deployment reports ProgressDeadlineExceeded.
func TestUnreadyMarkerExceedsProgressDeadline(t *testing.T) {
	ctx, ns, client := ctxFor(t), NewNamespace(t), Shared().AdminClient()
	webDeployment(t, ctx, client, ns, "app:v1")
	image := "127.0.0.1:5000/app:v2-unready@sha256:" + strings.Repeat("b", 64)
	setImage(t, ctx, client, ns, image)
	took := poll(t, ctx, "ProgressDeadlineExceeded", func() bool {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				return true
			}
		}
		return false
	})
	t.Logf("ProgressDeadlineExceeded (deadline 5s) after %s", took.Round(time.Millisecond))
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stuck := 0
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Image == image && !cs.Ready && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff" {
				stuck++
			}
		}
	}
	if stuck == 0 {
		t.Errorf("no pod of the unready image waits in ImagePullBackOff")
	}
}

// TestJobsCompleteOrFailByMarker: a Job completes; with the "failjob"
// marker and no retries it fails, its pod terminated with exit code 1.
func TestJobsCompleteOrFailByMarker(t *testing.T) {
	ctx, ns, client := ctxFor(t), NewNamespace(t), Shared().AdminClient()
	jobs := client.BatchV1().Jobs(ns)
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
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=bad"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of job bad: %v, %v", pods, err)
	}
	cs := pods.Items[0].Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.ExitCode != 1 {
		t.Errorf("failjob pod statuses %+v, want terminated with exit code 1", cs)
	}
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
	path := t.TempDir() + "/sa.kubeconfig"
	if err := Shared().WriteKubeconfig(cfg, path); err != nil {
		t.Fatal(err)
	}
	if out, err := Shared().Kubectl("--kubeconfig", path, "-n", ns, "auth", "can-i", "list", "pods"); err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Errorf("kubectl auth can-i with the SA kubeconfig: %q, %v", out, err)
	}
}

// TestSecondControlPlane: a separate control plane survives an apiserver
// restart, and Stop leaves none of its recorded processes running.
func TestSecondControlPlane(t *testing.T) {
	ctx := ctxFor(t)
	cp, err := Start(ctx, Options{BinDir: Shared().BinDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	t.Run("RestartAPIServer", func(t *testing.T) {
		client := cp.AdminClient()
		start := time.Now()
		if err := cp.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("apiserver restarted in %s", time.Since(start).Round(time.Millisecond))
		poll(t, ctx, "API answers after restart", func() bool {
			_, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err == nil
		})
	})
	t.Run("StopLeavesNoProcesses", func(t *testing.T) {
		pids := cp.PIDs()
		recorded, err := os.ReadFile(cp.PIDFile())
		if err != nil || len(pids) != 5 || strings.Count(string(recorded), "\n") != 5 {
			t.Fatalf("want 5 recorded processes, got %v and pid file %q (%v)", pids, recorded, err)
		}
		if err := cp.Stop(); err != nil {
			t.Fatal(err)
		}
		for name, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("%s (pid %d) still running after Stop", name, pid)
			}
		}
		if _, err := os.Stat(cp.Dir()); !os.IsNotExist(err) {
			t.Errorf("temp dir %s not removed: %v", cp.Dir(), err)
		}
	})
}

// TestNodeLeaseIsRenewed: kwok renews the fake node's Lease like a kubelet,
// so the node lifecycle controller never marks the node's pods un-Ready in
// the middle of a long test run.
func TestNodeLeaseIsRenewed(t *testing.T) {
	ctx := ctxFor(t)
	leases := Shared().AdminClient().CoordinationV1().Leases("kube-node-lease")
	var first time.Time
	poll(t, ctx, "the node lease", func() bool {
		l, err := leases.Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return false
		}
		first = l.Spec.RenewTime.Time
		return true
	})
	poll(t, ctx, "the node lease renewed", func() bool {
		l, err := leases.Get(ctx, NodeName, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(first)
	})
}
