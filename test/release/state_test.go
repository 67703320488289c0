package release

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

func findRecord(records []history.Record, match func(history.Record) bool) *history.Record {
	for i := range records {
		if match(records[i]) {
			return &records[i]
		}
	}
	return nil
}

// TestExportImportAcrossControlPlanes: CVs exported from cluster A and
// imported into a fresh cluster B run the same workloads at the same
// digests; a CV whose tag moved after the export deploys the exported
// last-known-good first, then follows its tag; histories come along.
func TestExportImportAcrossControlPlanes(t *testing.T) {
	e := e2eenv.New(t)
	a, b := clusterA(t), clusterB(t)
	reg := e2eenv.NewRegistry(t)
	digests := map[string]string{}
	for _, name := range []string{"cart", "pay"} {
		digests[name] = reg.MustPush(t, "team/"+name, "v1", "env-prod")
	}
	e.StartController(reg.Resolver(t))
	b.ensureNamespace(t, e.NS)
	for _, name := range []string{"cart", "pay"} {
		repo := reg.Repo("team/" + name)
		for _, c := range []*Cluster{a, b} {
			_, err := c.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 2), metav1.CreateOptions{})
			e2eenv.Must(t, err)
		}
		e.CreateCV(gen.NewCV(e.NS, name, repo))
		e.WaitStatus(name, cvv1.StatusSuccess, digests[name], 60*time.Second)
	}

	dir := filepath.Join(t.TempDir(), "state")
	out, err := e2eenv.RunCLI("state", "export", "local", "--path", dir, "--kubeconfig", a.Kubeconfig, "--namespace", e.NS)
	if err != nil || !strings.Contains(out, "exported 2 ContainerVersions") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	cart2 := reg.MustPush(t, "team/cart", "v2", "env-prod") // after the export: B must still start from v1

	b.startController(t, e.NS, reg.Resolver(t))
	out, err = e2eenv.RunCLI("state", "import", "local", "--path", dir, "--kubeconfig", b.Kubeconfig, "--namespace", e.NS)
	if err != nil || !strings.Contains(out, "2 created") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))

	b.waitCV(t, e.NS, "pay", cvv1.StatusSuccess, digests["pay"], 60*time.Second)
	if ia, ib := a.deploymentImage(t, e.NS, "pay"), b.deploymentImage(t, e.NS, "pay"); ia != ib || ib != gen.Pinned(reg.Repo("team/pay"), "v1", digests["pay"]) {
		t.Errorf("pay runs %s in A and %s in B", ia, ib)
	}
	b.waitCV(t, e.NS, "cart", cvv1.StatusSuccess, cart2, 60*time.Second)
	records, err := history.NewStore(b.Kube).List(e.Ctx, e.NS, "cart.history")
	e2eenv.Must(t, err)
	imported := findRecord(records, func(r history.Record) bool { return r.Trigger == history.TriggerImport })
	followed := findRecord(records, func(r history.Record) bool { return r.ToDigest == cart2 })
	fromA := findRecord(records, func(r history.Record) bool { return r.Trigger == history.TriggerPoll && r.ToDigest == digests["cart"] })
	if imported == nil || imported.ToDigest != digests["cart"] || followed == nil || fromA == nil {
		t.Errorf("cart's history in B should hold A's rollout of v1, the import of v1, then v2: %+v", records)
	}
	if imported != nil && followed != nil && !followed.Time.After(imported.Time) {
		t.Errorf("B deployed v2 (%s) before the pinned v1 (%s)", followed.Time, imported.Time)
	}
}

// seedCVs creates n CVs in the test's namespace of cluster A, each with a successful version
// in status and a one-record history, as a running cluster would have.
func seedCVs(t *testing.T, e *e2eenv.Env, n int) {
	t.Helper()
	start := time.Now()
	err := parallel(e.Ctx, n, 32, func(ctx context.Context, i int) error {
		name := cvName(i)
		cv := gen.NewCV(e.NS, name, "registry.example.com/team/"+name)
		created, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(ctx, cv, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		digest := fakeDigest(i)
		created.Status = cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: digest, CurrVersion: "v1",
			CurrDigest: digest, CurrStatus: cvv1.StatusSuccess}
		if created, err = e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return err
		}
		return history.NewStore(e.Kube).Append(ctx, created, history.Record{ID: "seed-" + name, Time: time.Now(),
			Workload: "Deployment/" + name, Container: "app", ToVersion: "v1", ToDigest: digest,
			Outcome: history.OutcomeSuccess, Trigger: history.TriggerPoll})
	})
	e2eenv.Must(t, err)
	t.Logf("seeded %d CVs with status and history in %s", n, time.Since(start).Round(time.Millisecond))
}

// countPinned counts the CVs of ns in c marked to restore their seeded
// digest first (the import mark: the controller, not the import, writes
// the status that pins them).
func countPinned(t *testing.T, c *Cluster, ns string) int {
	t.Helper()
	list, err := c.CVs.CvmanagerV1alpha1().ContainerVersions(ns).List(context.Background(), metav1.ListOptions{})
	e2eenv.Must(t, err)
	n := 0
	for _, cv := range list.Items {
		var i int
		if _, err := fmt.Sscanf(cv.Name, "cv-%d", &i); err == nil &&
			strings.HasSuffix(cv.Annotations[cvv1.AnnotationImported], "@"+fakeDigest(i)) {
			n++
		}
	}
	return n
}

func cvName(i int) string     { return fmt.Sprintf("cv-%04d", i) }
func fakeDigest(i int) string { return fmt.Sprintf("sha256:%064x", i+1) }

// parallel runs f for 0..n-1 with at most limit at once.
func parallel(ctx context.Context, n, limit int, f func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		g.Go(func() error { return f(ctx, i) })
	}
	return g.Wait()
}

// readManifest reads the manifest of a local state path.
func readManifest(t *testing.T, dir string) *state.Manifest {
	t.Helper()
	b, err := state.NewLocal(dir)
	e2eenv.Must(t, err)
	m, err := state.ReadManifest(context.Background(), b)
	e2eenv.Must(t, err)
	return m
}
