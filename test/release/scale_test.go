package release

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/pkg/state/statetest"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// TestExportImport1500CVs exports 1,500 CVs (with status and history) from
// cluster A to a local directory and to a versioned bucket on a real
// S3-compatible server, imports each into cluster B, and records the
// times (bench/results/<time>-state, quoted by docs/state.md). 1,501 objects in the bucket
// make the listing of `state clear` page past S3's 1,000 keys.
func TestExportImport1500CVs(t *testing.T) {
	const n = 1500
	e := e2eenv.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // more than New's 3 minutes
	t.Cleanup(cancel)
	e.Ctx = ctx
	a, b := clusterA(t), clusterB(t)
	seedCVs(t, e, n)
	s3srv := statetest.StartS3(t)
	s3srv.Bucket(t, "releases", true)
	s3Flags := []string{"--bucket", "releases", "--path", "prod/eu", "--endpoint", s3srv.Endpoint, "--path-style"}
	dir := filepath.Join(t.TempDir(), "state")

	timed := func(what string, args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := e2eenv.RunCLI(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, tail(out))
		}
		took := time.Since(start)
		t.Logf("%s: %s (%s)", what, took.Round(time.Millisecond), lastLine(out))
		figures.Record(t, figureName(what), took.Seconds(), "s", 0, "`cvmanager state`: "+what)
		return out
	}
	exportA := []string{"state", "export", "--kubeconfig", a.Kubeconfig, "--namespace", e.NS}
	timed("export 1500 CVs to local", append(exportA, "local", "--path", dir)...)
	timed("export 1500 CVs to S3", append(append(exportA, "s3"), s3Flags...)...)
	out := timed("export again to S3, nothing changed", append(append(exportA, "s3"), s3Flags...)...)
	if !strings.Contains(out, "0 written, 1500 unchanged") {
		t.Errorf("an unchanged export rewrote objects: %s", out)
	}

	importB := []string{"state", "import", "--kubeconfig", b.Kubeconfig, "--namespace", e.NS, "--create-namespaces"}
	timed("import 1500 CVs from local", append(importB, "local", "--path", dir)...)
	t.Cleanup(func() { _ = b.Kube.CoreV1().Namespaces().Delete(context.Background(), e.NS, metav1.DeleteOptions{}) })
	if got := countPinned(t, b, e.NS); got != n {
		t.Fatalf("%d of %d CVs imported pinned to their last-known-good", got, n)
	}
	histories, err := b.Kube.CoreV1().ConfigMaps(e.NS).List(e.Ctx, metav1.ListOptions{LabelSelector: history.Selector})
	e2eenv.Must(t, err)
	if len(histories.Items) != n {
		t.Errorf("%d history ConfigMaps restored, want %d", len(histories.Items), n)
	}

	// Empty B's namespace, then import the same state from S3.
	e2eenv.Must(t, b.CVs.CvmanagerV1alpha1().ContainerVersions(e.NS).DeleteCollection(e.Ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
	e2eenv.Must(t, b.Kube.CoreV1().ConfigMaps(e.NS).DeleteCollection(e.Ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: history.Selector}))
	// The default client rate (100 requests/s per client) bounds the import
	// above; this one shows what the apiserver itself allows.
	timed("import 1500 CVs from S3 at --kube-api-qps 1000", append(append(importB, "s3", "--kube-api-qps", "1000", "--kube-api-burst", "2000"), s3Flags...)...)
	if got := countPinned(t, b, e.NS); got != n {
		t.Fatalf("%d of %d CVs imported from S3 pinned to their last-known-good", got, n)
	}

	bucket, err := state.NewS3(e.Ctx, state.S3Options{Path: "releases/prod/eu", Endpoint: s3srv.Endpoint, PathStyle: true})
	e2eenv.Must(t, err)
	objects, err := bucket.List(e.Ctx, "")
	e2eenv.Must(t, err)
	if len(objects) != n+1 {
		t.Errorf("bucket lists %d objects, want %d (every CV and the manifest)", len(objects), n+1)
	}
	timed("clear the S3 path", append([]string{"state", "clear", "s3"}, s3Flags...)...)
	if left := s3srv.Versions(t, "releases", "prod/eu/"); left != 0 {
		t.Errorf("%d object versions left after clear", left)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func tail(s string) string {
	if len(s) > 2000 {
		return fmt.Sprintf("...%s", s[len(s)-2000:])
	}
	return s
}

// figureName makes a results key of a step's description.
func figureName(what string) string {
	return strings.NewReplacer(" ", "_", ",", "", "--", "", "-", "_").Replace(what)
}
