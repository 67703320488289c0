package state

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
	"cvmanager.dev/cvmanager/pkg/history"
)

// TestCollectMergesEachCVsRecordsFromTheWorkloadHistories: a CV's exported
// history is its own ConfigMap's records and its records in the workload
// histories, and none of another CV's, also where two CVs share a
// workload's history.
func TestCollectMergesEachCVsRecordsFromTheWorkloadHistories(t *testing.T) {
	ctx := context.Background()
	cv := func(name string) *cvv1.ContainerVersion {
		return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: k8stypes.UID("uid-" + name)}}
	}
	web, api := cv("web"), cv("api")
	kube := fake.NewClientset()
	store := history.NewStore(kube)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	record := func(id, cvName string, minutes int) history.Record {
		return history.Record{ID: id, CV: cvName, Time: at.Add(time.Duration(minutes) * time.Minute), Outcome: history.OutcomeSuccess, ToVersion: "v" + id, ToDigest: "sha256:" + id}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.Append(ctx, web, record("1", "web", 1)))                                         // web's own history
	must(store.AppendTo(ctx, web, history.WorkloadConfigMapName("web"), record("2", "web", 2))) // web's workload
	must(store.AppendTo(ctx, web, history.WorkloadConfigMapName("shared"), record("3", "web", 3)))
	must(store.AppendTo(ctx, api, history.WorkloadConfigMapName("shared"), record("4", "api", 4)))
	cvs := cvfake.NewSimpleClientset(web, api)

	states, err := Collect(ctx, kube, cvs, []string{"shop"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, s := range states {
		for _, rec := range s.History {
			got[s.Name] = append(got[s.Name], rec.ToDigest)
		}
	}
	want := map[string][]string{"web": {"sha256:3", "sha256:2", "sha256:1"}, "api": {"sha256:4"}}
	for name, digests := range want {
		if len(got[name]) != len(digests) {
			t.Errorf("%s exported %v, want %v", name, got[name], digests)
			continue
		}
		for i := range digests {
			if got[name][i] != digests[i] {
				t.Errorf("%s exported %v, want %v (newest first)", name, got[name], digests)
				break
			}
		}
	}
}
