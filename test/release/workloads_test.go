package release

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// seedWorkloads creates, in cluster A, every kind a CV manages: web's
// Deployment, StatefulSet, DaemonSet and CronJob (app=web), and a
// suspended blue-green CV shop with its two sides and its Services: the
// live one a NodePort Service whose nodePort the user chose, the
// verification one a NodePort Service whose nodePort was allocated.
func seedWorkloads(t *testing.T, e *e2eenv.Env, a *Cluster, image string) {
	t.Helper()
	ctx, ns := e.Ctx, e.NS
	apps := a.Kube.AppsV1()
	_, err := apps.Deployments(ns).Create(ctx, gen.NewDeployment(ns, "web", "web", image, 2), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = apps.StatefulSets(ns).Create(ctx, gen.NewStatefulSet(ns, "web-db", "web", image), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = apps.DaemonSets(ns).Create(ctx, gen.NewDaemonSet(ns, "web-agent", "web", image), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = a.Kube.BatchV1().CronJobs(ns).Create(ctx, gen.NewCronJob(ns, "web-report", "web", image), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = apps.Deployments(ns).Create(ctx, gen.NewDeployment(ns, "unrelated", "other", image, 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	for _, color := range []string{"blue", "green"} {
		_, err = apps.Deployments(ns).Create(ctx, gen.ColorDeployment(ns, "shop", color, image, 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	for i, svc := range gen.BlueGreenServices(ns, "shop") {
		svc.Spec.Type = corev1.ServiceTypeNodePort
		if i == 0 {
			svc.Spec.Ports[0].NodePort = 30080
		}
		_, err = a.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	shop := gen.NewCV(ns, "shop", "registry.example.com/team/shop", gen.BlueGreen("shop", "verifier:v1"))
	shop.Spec.Suspend = true
	_, err = a.CVs.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, shop, metav1.CreateOptions{})
	e2eenv.Must(t, err)
}

// TestExportImportWorkloads: `state export --workloads` from cluster A
// and `state import` into an empty cluster B bring up the same workloads
// at the digest A ran, without A's cluster-specific fields; a dry run
// creates nothing; importing again skips every object as identical.
func TestExportImportWorkloads(t *testing.T) {
	e := e2eenv.New(t)
	a, b := clusterA(t), clusterB(t)
	reg := e2eenv.NewRegistry(t)
	digest := reg.MustPush(t, "team/web", "v1", "env-prod")
	repo := reg.Repo("team/web")
	seedWorkloads(t, e, a, repo+":old")
	e.StartController(reg.Resolver(t))
	e.CreateCV(gen.NewCV(e.NS, "web", repo))
	e.WaitStatus("web", cvv1.StatusSuccess, digest, 90*time.Second)
	pinned := gen.Pinned(repo, "v1", digest)

	dir := filepath.Join(t.TempDir(), "state")
	out, err := e2eenv.RunCLI("state", "export", "local", "--workloads", "--path", dir, "--kubeconfig", a.Kubeconfig, "--namespace", e.NS)
	if err != nil || !strings.Contains(out, "exported 2 ContainerVersions and 8 workloads") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	checkExportedService(t, dir, e.NS)

	run := func(extra ...string) string {
		t.Helper()
		args := append([]string{"state", "import", "local", "--path", dir, "--kubeconfig", b.Kubeconfig,
			"--namespace", e.NS, "--create-namespaces"}, extra...)
		out, err := e2eenv.RunCLI(args...)
		if err != nil {
			t.Fatalf("import %v: %v\n%s", extra, err, out)
		}
		t.Log(strings.TrimSpace(out))
		return out
	}
	if out := run("--dry-run"); !strings.Contains(out, "workloads: 8 to create, 0 skipped, 0 failed") {
		t.Errorf("dry run should plan 8 workloads:\n%s", out)
	}
	if _, err := b.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the dry run created Deployment web in B (get: %v)", err)
	}
	if out := run(); !strings.Contains(out, "workloads: 8 created, 0 skipped, 0 failed") {
		t.Errorf("import should create 8 workloads:\n%s", out)
	}
	waitWorkloadsUp(t, b, e.NS, pinned)
	if _, err := b.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, "unrelated", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Deployment no CV selects was carried over (get: %v)", err)
	}
	svc, err := b.Kube.CoreV1().Services(e.NS).Get(e.Ctx, "shop", metav1.GetOptions{})
	e2eenv.Must(t, err)
	if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("Service shop in B: clusterIP %q (want one allocated), nodePort %d (want the user's 30080)", svc.Spec.ClusterIP, svc.Spec.Ports[0].NodePort)
	}
	if out := run(); !strings.Contains(out, "workloads: 0 created, 8 skipped, 0 failed") || strings.Contains(out, "differs") {
		t.Errorf("a second import should skip all 8 workloads as identical:\n%s", out)
	}
}

// checkExportedService reads the exported Services: allocated addresses
// are gone, the nodePort the user chose stays.
func checkExportedService(t *testing.T, dir, ns string) {
	t.Helper()
	nodePorts := map[string]any{}
	for _, name := range []string{"shop", "shop-verify"} {
		data, err := os.ReadFile(filepath.Join(dir, state.WorkloadKey(state.KindService, ns, name)))
		e2eenv.Must(t, err)
		var svc corev1.Service
		e2eenv.Must(t, json.Unmarshal(data, &svc))
		if svc.Spec.ClusterIP != "" || len(svc.Spec.ClusterIPs) > 0 || svc.UID != "" || svc.ResourceVersion != "" || len(svc.ManagedFields) > 0 {
			t.Errorf("exported Service %s keeps cluster-specific fields:\n%s", name, data)
		}
		nodePorts[name] = svc.Spec.Ports[0].NodePort
	}
	want := map[string]any{"shop": int32(30080), "shop-verify": int32(0)}
	if diff := cmp.Diff(want, nodePorts); diff != "" {
		t.Errorf("exported nodePorts (-want +got):\n%s", diff)
	}
}

// waitWorkloadsUp waits until B runs web's Deployment (available, at the
// pinned image), StatefulSet and DaemonSet, and holds the CronJob.
func waitWorkloadsUp(t *testing.T, b *Cluster, ns, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		if last = workloadsDown(ctx, b, ns, image); last == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("workloads in B did not come up: %s", last)
}

func workloadsDown(ctx context.Context, b *Cluster, ns, image string) string {
	apps := b.Kube.AppsV1()
	d, err := apps.Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || d.Status.AvailableReplicas != 2 || d.Spec.Template.Spec.Containers[0].Image != image {
		return "Deployment web not available at " + image
	}
	s, err := apps.StatefulSets(ns).Get(ctx, "web-db", metav1.GetOptions{})
	if err != nil || s.Status.ReadyReplicas != 2 || s.Spec.Template.Spec.Containers[0].Image != image {
		return "StatefulSet web-db not ready at " + image
	}
	ds, err := apps.DaemonSets(ns).Get(ctx, "web-agent", metav1.GetOptions{})
	if err != nil || ds.Status.NumberReady < 1 {
		return "DaemonSet web-agent not ready"
	}
	cj, err := b.Kube.BatchV1().CronJobs(ns).Get(ctx, "web-report", metav1.GetOptions{})
	if err != nil || cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != image {
		return "CronJob web-report missing or not at " + image
	}
	return ""
}
