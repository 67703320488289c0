package controller

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// TestPerWorkloadRecords: one record per workload in "<workload>.history",
// IDs distinct even for two kinds of one name, all sharing the rollout;
// no workload at all keeps the record in the CV's own history.
func TestPerWorkloadRecords(t *testing.T) {
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	rec := history.Record{ID: "r1", CV: "web", ToVersion: "v2"}
	type row struct{ ConfigMap, ID, Rollout, Workload, Kind string }
	summarize := func(in []workloadRecord) []row {
		var out []row
		for _, w := range in {
			out = append(out, row{w.configMap, w.record.ID, w.record.Rollout, w.record.Workload, w.record.Kind})
		}
		return out
	}
	got := summarize(perWorkloadRecords(cv, rec, []string{"Deployment/api", "StatefulSet/api", "Deployment/worker"}))
	want := []row{
		{"api.history", "r1-" + shortHash("Deployment/api"), "r1", "Deployment/api", "Deployment"},
		{"api.history", "r1-" + shortHash("StatefulSet/api"), "r1", "StatefulSet/api", "StatefulSet"},
		{"worker.history", "r1-" + shortHash("Deployment/worker"), "r1", "Deployment/worker", "Deployment"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("per-workload records (-want +got):\n%s", diff)
	}
	if got := summarize(perWorkloadRecords(cv, rec, nil)); !cmp.Equal(got, []row{{"web.history", "r1", "", "", ""}}) {
		t.Errorf("no workload: %+v", got)
	}
}

// TestPromotionOfReadsEachHistoryOnce: looking for the promotion that
// moved the tag to a digest reads the CV's own history once (it holds the
// promotion records) and then the histories of its workloads, not the
// CV's own a second time; a digest nobody promoted costs that one read.
func TestPromotionOfReadsEachHistoryOnce(t *testing.T) {
	ctx := context.Background()
	v1 := pinned("v1", digest1)
	cv := webCV(polled(), func(s *cvv1.ContainerVersionSpec) { s.History.Name = "web-cv" })
	f := newFixture(t, poller.ResolvedImage{}, cv, annotated(webDeployment(v1, true), v1))
	promoted := history.Record{ID: "promote-1", Time: t0.Add(-time.Minute), Action: history.ActionPromote, CV: "web",
		From: "staging/web", ToVersion: "v2", ToDigest: digest2, Outcome: history.OutcomePromoted, Trigger: history.TriggerPromote}
	if err := history.NewStore(f.kube).Append(ctx, cv, promoted); err != nil {
		t.Fatal(err)
	}
	workloads, err := f.c.selectWorkloads(cv)
	if err != nil || len(workloads) != 1 {
		t.Fatalf("selected %d workloads (%v), want web", len(workloads), err)
	}
	for _, tc := range []struct {
		digest    string
		wantFound bool
		wantReads []string
	}{
		{digest2, true, []string{"get configmaps web-cv.history", "get configmaps web.history"}},
		{digest1, false, []string{"get configmaps web-cv.history"}},
	} {
		f.kube.ClearActions()
		rec, found := f.c.promotionOf(ctx, cv, workloads, tc.digest)
		if found != tc.wantFound || found && rec.ID != promoted.ID {
			t.Errorf("%s: found %v (%s), want %v", tc.digest, found, rec.ID, tc.wantFound)
		}
		if diff := cmp.Diff(tc.wantReads, actions(f.kube)); diff != "" {
			t.Errorf("%s: reads (-want +got):\n%s", tc.digest, diff)
		}
	}
}
