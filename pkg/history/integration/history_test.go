package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}))
}

var (
	crdOnce sync.Once
	crdErr  error
)

type env struct {
	ctx   context.Context
	kube  kubernetes.Interface
	cvs   versioned.Interface
	store *history.Store
	ns    string
}

// setup installs the CRDs once per package and gives each test a namespace.
func setup(t *testing.T) env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cfg := controlplane.SharedConfig()
	crdOnce.Do(func() { _, crdErr = kubetest.InstallCRDs(ctx, cfg) })
	if crdErr != nil {
		t.Fatal(crdErr)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cvs, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return env{ctx: ctx, kube: kube, cvs: cvs, store: history.NewStore(kube), ns: controlplane.NewNamespace(t)}
}

// createCV creates a CV so the history's owner reference has a real UID.
func (e env) createCV(t *testing.T, name string, opts ...gen.CVOption) *cvv1.ContainerVersion {
	t.Helper()
	cv, err := e.cvs.CvmanagerV1alpha1().ContainerVersions(e.ns).Create(e.ctx, gen.CV(e.ns, name, opts...), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cv
}

func (e env) ids(t *testing.T, cv *cvv1.ContainerVersion) []string {
	t.Helper()
	records, err := e.store.List(e.ctx, e.ns, history.ConfigMapName(cv))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, r := range records {
		ids = append(ids, r.ID)
	}
	return ids
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func record(id string, minutes int) history.Record {
	return history.Record{
		ID: id, Time: t0.Add(time.Duration(minutes) * time.Minute),
		Workload: "Deployment/web", Container: "app", ToVersion: "v" + id, ToDigest: "sha256:" + id,
		Strategy: "Simple", Outcome: history.OutcomeSuccess, Trigger: history.TriggerPoll,
	}
}

// TestOwnedLabeledAndCollected: the ConfigMap is found by the dashboard's
// label selector, is controlled by the CV, and goes when the CV goes.
func TestOwnedLabeledAndCollected(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cv := e.createCV(t, "web")
	if err := e.store.Append(e.ctx, cv, record("1", 1)); err != nil {
		t.Fatal(err)
	}
	list, err := e.kube.CoreV1().ConfigMaps(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: history.Selector})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "web.history" {
		t.Fatalf("label selector %q found %d ConfigMaps, want web.history", history.Selector, len(list.Items))
	}
	want := []metav1.OwnerReference{{
		APIVersion: "cvmanager.dev/v1alpha1", Kind: "ContainerVersion", Name: "web", UID: cv.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	if diff := cmp.Diff(want, list.Items[0].OwnerReferences); diff != "" {
		t.Errorf("owner references (-want +got):\n%s", diff)
	}
	e.assertCollected(t)
}

// assertCollected checks the garbage collector deletes a history with its
// CV. The collector learns of a CRD installed after it started only at its
// 30 s discovery resync, and owner lookups that failed before then back off
// exponentially (past 40 s), so each attempt uses a fresh CV: the first one
// created after the resync must be collected within seconds.
func (e env) assertCollected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		cv := e.createCV(t, fmt.Sprintf("gc%d", i))
		if err := e.store.Append(e.ctx, cv, record("1", 1)); err != nil {
			t.Fatal(err)
		}
		if err := e.cvs.CvmanagerV1alpha1().ContainerVersions(e.ns).Delete(e.ctx, cv.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(ctx, history.ConfigMapName(cv), metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err == nil {
			t.Logf("history collected with its CV on attempt %d", i+1)
			return
		}
	}
	t.Errorf("no history garbage-collected with its CV within 45 s")
}

// TestConcurrentAppendsLoseNothing: writers racing on one ConfigMap (both
// to create it and to update it) each get their record in, exactly once.
func TestConcurrentAppendsLoseNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cv := e.createCV(t, "web")
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := history.NewStore(e.kube) // one per writer, like separate replicas
			errs <- store.Append(e.ctx, cv, record(strconv.Itoa(i), i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := e.ids(t, cv)
	var want []string
	for i := writers - 1; i >= 0; i-- {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids newest first (-want +got):\n%s", diff)
	}
}

func TestAppendSequences(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit int32
		ids   []int
		want  []string
	}{
		{name: "same ID twice kept once", ids: []int{1, 1}, want: []string{"1"}},
		{name: "restart resends older IDs", ids: []int{1, 2, 1, 2, 3}, want: []string{"3", "2", "1"}},
		{name: "limit keeps newest", limit: 3, ids: []int{1, 2, 3, 4, 5}, want: []string{"5", "4", "3"}},
	}
	e := setup(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cv := e.createCV(t, fmt.Sprintf("cv%d", i), gen.WithSpec(func(s *cvv1.ContainerVersionSpec) {
				s.History = cvv1.HistorySpec{Enabled: true, Limit: tt.limit}
			}))
			for _, id := range tt.ids {
				if err := e.store.Append(e.ctx, cv, record(strconv.Itoa(id), id)); err != nil {
					t.Fatal(err)
				}
			}
			got := e.ids(t, cv)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWorkloadHistoryAtTheObjectLimit: a workload's history kept at its
// byte bound stays a ConfigMap the apiserver accepts (under 1 MiB with its
// metadata) while records far larger than usual keep arriving; the newest
// are kept, the oldest dropped, and the record count stays steady.
func TestWorkloadHistoryAtTheObjectLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cv := e.createCV(t, "big", gen.WithSpec(func(s *cvv1.ContainerVersionSpec) { s.History = cvv1.HistorySpec{Enabled: true, Limit: 1000} }))
	name := history.WorkloadConfigMapName("web")
	big := func(i int) history.Record {
		r := record(strconv.Itoa(i), i)
		r.CV, r.Outcome = cv.Name, history.OutcomeFailed
		r.Reason = fmt.Sprintf("%d: %s", i, strings.Repeat("x", history.MaxReasonBytes)) // truncated to the maximum
		return r
	}
	var counts []int
	const appends = 140 // ≈ 1.15 MiB of records in all
	for i := 0; i < appends; i++ {
		if err := e.store.AppendTo(e.ctx, cv, name, big(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if i >= appends-3 {
			records, err := e.store.List(e.ctx, e.ns, name)
			if err != nil {
				t.Fatal(err)
			}
			counts = append(counts, len(records))
			if records[0].ID != strconv.Itoa(i) {
				t.Errorf("after append %d the newest record is %s", i, records[0].ID)
			}
		}
	}
	cm, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	if size > history.DefaultByteBudget || size < history.DefaultByteBudget-2*history.MaxReasonBytes {
		t.Errorf("history holds %d bytes of data, want just under the budget %d", size, history.DefaultByteBudget)
	}
	if counts[0] != counts[1] || counts[1] != counts[2] || counts[2] >= appends {
		t.Errorf("record counts of the last appends %v: want steady and below %d", counts, appends)
	}
	t.Logf("history at its limit: %d records, %d bytes of data (limit 1 MiB = %d)", counts[2], size, 1<<20)
}
