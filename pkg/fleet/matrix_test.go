package fleet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

func TestNewMatrix(t *testing.T) {
	t1, t2 := now.Add(-time.Hour), now.Add(-time.Minute)
	clusters := []Cluster{
		{Name: "staging", Entries: []Entry{
			{Namespace: "web", Name: "api", Version: "v2", State: "Success", Since: t1},
			// Two workloads of one CV: the worst state wins, drift sticks.
			{Namespace: "web", Name: "front", Version: "v9", State: "Success", Since: t1},
			{Namespace: "web", Name: "front", Version: "v9", State: "Progressing", Since: t2, Drifted: true},
		}},
		{Name: "prod", Entries: []Entry{{Namespace: "web", Name: "api", Version: "v1", State: "Success", Since: t1}}},
		{Name: "down", Error: "connection refused"},
	}
	got := NewMatrix(clusters)
	want := []Row{
		{Namespace: "web", Name: "api", Differs: true, Cells: []*Entry{
			{Namespace: "web", Name: "api", Version: "v2", State: "Success", Since: t1},
			{Namespace: "web", Name: "api", Version: "v1", State: "Success", Since: t1}, nil}},
		{Namespace: "web", Name: "front", Cells: []*Entry{
			{Namespace: "web", Name: "front", Version: "v9", State: "Progressing", Since: t2, Drifted: true}, nil, nil}},
	}
	if diff := cmp.Diff(want, got.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if got.Clusters[2].Reachable() || !got.Clusters[0].Reachable() {
		t.Error("reachability")
	}
	if empty := (Cluster{Name: "empty", Entries: EntriesOf(nil)}); !empty.Reachable() {
		t.Error("a cluster read with no CVs is reachable")
	}
}

func TestEntryOf(t *testing.T) {
	at := metav1.NewTime(now)
	cond := func(typ string) []metav1.Condition {
		return []metav1.Condition{{Type: typ, Status: metav1.ConditionTrue}}
	}
	tests := []struct {
		name string
		st   cvv1.ContainerVersionStatus
		want string
	}{
		{"nothing yet", cvv1.ContainerVersionStatus{}, "Pending"},
		{"success", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, CurrStatusTime: &at}, "Success"},
		{"failed", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusFailed}, "Failed"},
		{"held by minAge", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, AvailableVersion: "v3", Conditions: cond(cvv1.ConditionReleaseBlocked)}, "Held"},
		{"drifted", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, Conditions: cond(cvv1.ConditionDrifted)}, "Drifted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cv := gen.CV("ns", "web")
			cv.Status = tt.st
			if got := EntryOf(cv).State; got != tt.want {
				t.Errorf("state %q, want %q", got, tt.want)
			}
		})
	}
}
