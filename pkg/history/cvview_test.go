package history

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCVHistory: a CV's view merges its own (legacy) history and its
// workloads' histories, leaves out another CV's records in a shared
// workload history, folds one rollout's per-workload records into one and
// orders newest first.
func TestCVHistory(t *testing.T) {
	ctx := context.Background()
	s := NewStore(fake.NewClientset())
	web, other := newCV("web"), newCV("other")
	at := func(m int) time.Time { return time.Date(2026, 1, 1, 0, m, 0, 0, time.UTC) }
	// Written by an earlier version: one record per rollout in web.history, no CV field.
	must(t, s.Append(ctx, web, Record{ID: "legacy", Time: at(1), Workload: "Deployment/web,Deployment/web-canary", ToVersion: "v1", Outcome: OutcomeSuccess}))
	// Now: one record per workload, in <workload>.history.
	for _, w := range []string{"web", "web-canary"} {
		must(t, s.AppendTo(ctx, web, WorkloadConfigMapName(w), Record{ID: "r2-" + w, Rollout: "r2", CV: "web", Time: at(2),
			Workload: "Deployment/" + w, Kind: "Deployment", ToVersion: "v2", Outcome: OutcomeSuccess}))
	}
	// Another CV once managed web-canary.
	must(t, s.AppendTo(ctx, other, WorkloadConfigMapName("web-canary"), Record{ID: "o1", CV: "other", Time: at(3), Workload: "Deployment/web-canary", ToVersion: "x"}))
	must(t, s.Append(ctx, web, Record{ID: "p3", CV: "web", Time: at(4), Action: ActionPromote, ToVersion: "v3", Outcome: OutcomePromoted}))
	// A state import wrote the grouped record back into the CV's history.
	must(t, s.Append(ctx, web, Record{ID: "r2", Rollout: "r2", CV: "web", Time: at(2),
		Workload: "Deployment/web,Deployment/web-canary", Kind: "Deployment", ToVersion: "v2", Outcome: OutcomeSuccess}))

	got, err := CVHistory(ctx, s, web, []string{"web", "web-canary", "web"})
	must(t, err)
	var summary []string
	for _, r := range got {
		summary = append(summary, r.ID+" "+r.Workload+" "+r.Kind+" "+r.ToVersion)
	}
	want := []string{
		"p3   v3",
		"r2 Deployment/web,Deployment/web-canary Deployment v2",
		"legacy Deployment/web,Deployment/web-canary  v1",
	}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("CV history (-want +got):\n%s", diff)
	}
	// The workload's own history keeps one record per rollout of that workload.
	canary, err := s.List(ctx, "ns", "web-canary.history")
	must(t, err)
	if len(canary) != 2 || canary[0].ID != "o1" || canary[1].ID != "r2-web-canary" {
		t.Errorf("web-canary.history: %+v", canary)
	}
}

// TestCVHistoryFoldsAWholeRolloutRecord: a record for the whole rollout
// (no workload; written by a finish that was redone and reported no
// workload) carries the rollout's ID and is one rollout with the
// per-workload records that name that ID.
func TestCVHistoryFoldsAWholeRolloutRecord(t *testing.T) {
	ctx := context.Background()
	s := NewStore(fake.NewClientset())
	api := newCV("api") // its history and its Deployment's share api.history
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.AppendTo(ctx, api, WorkloadConfigMapName("api"), Record{ID: "r1-d", Rollout: "r1", CV: "api", Time: at,
		Workload: "Deployment/api", Kind: "Deployment", ToVersion: "v2", Outcome: OutcomeRolledBack}))
	must(t, s.Append(ctx, api, Record{ID: "r1", CV: "api", Time: at.Add(time.Second), ToVersion: "v2", Outcome: OutcomeRolledBack}))

	got, err := CVHistory(ctx, s, api, []string{"api"})
	must(t, err)
	if len(got) != 1 || got[0].ID != "r1" || got[0].Workload != "Deployment/api" || got[0].Kind != "Deployment" {
		t.Errorf("want one record r1 for Deployment/api, got %+v", got)
	}
}

func TestWorkloadConfigMapName(t *testing.T) {
	if got := WorkloadConfigMapName("api"); got != "api.history" {
		t.Errorf("WorkloadConfigMapName(api) = %q", got)
	}
	long := WorkloadConfigMapName(longName(250))
	if len(long) > maxNameLen {
		t.Errorf("name of %d bytes", len(long))
	}
}

func longName(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
