package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
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
