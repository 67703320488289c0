package controller

import (
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// countingIndexer counts the reads of LabelIndex: workload.Listers.Select
// makes one per kind's cache for a selector with an equality requirement,
// as webCV's app=web is.
type countingIndexer struct {
	cache.Indexer
	reads atomic.Int32
}

func (i *countingIndexer) ByIndex(name, key string) ([]any, error) {
	if name == workload.LabelIndex {
		i.reads.Add(1)
	}
	return i.Indexer.ByIndex(name, key)
}

// TestOneSelectionPerSync: a sync selects the CV's workloads once, in
// observe, and hands them to every read that needs them (drift, pull
// Secrets, the rollout's world, the first step, the history record). The
// count is of the CronJob cache, which Select reads once per call and
// nothing else reads.
func TestOneSelectionPerSync(t *testing.T) {
	v1, v2 := pinned("v1", digest1), pinned("v2", digest2)
	for _, tc := range []struct {
		name     string
		resolved poller.ResolvedImage
		cv       *cvv1.ContainerVersion
		workload *appsv1.Deployment
		want     string // CurrStatus written, "" for no write
	}{{
		name:     "at rest: drift checked, no poll due",
		cv:       webCV(polled()),
		workload: annotated(webDeployment(v1, true), v1),
	}, {
		name:     "at rest: drift checked, a due poll finds the tag unchanged",
		resolved: poller.ResolvedImage{Digest: digest1, Version: "v1"},
		cv:       webCV(neverPolled()),
		workload: annotated(webDeployment(v1, true), v1),
		want:     cvv1.StatusSuccess,
	}, {
		name:     "at rest: drift starts a restore and its first step",
		cv:       webCV(polled()),
		workload: annotated(webDeployment(repo+":v0", true), v1),
		want:     cvv1.StatusProgressing,
	}, {
		name:     "poll: a moved tag starts a rollout and its first step",
		resolved: poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv:       webCV(neverPolled()),
		workload: annotated(webDeployment(v1, true), v1),
		want:     cvv1.StatusProgressing,
	}, {
		name:     "rollout under way: workloads not ready yet",
		cv:       webCV(rollingOut(t0.Add(-10 * time.Second))),
		workload: webDeployment(v2, false),
	}, {
		name:     "rollout under way: ready workloads finish it, with a history record",
		cv:       webCV(rollingOut(t0.Add(-10 * time.Second))),
		workload: webDeployment(v2, true),
		want:     cvv1.StatusSuccess,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.resolved, tc.cv, tc.workload)
			counted := &countingIndexer{Indexer: f.c.workloads.CronJobs}
			f.c.workloads.CronJobs = counted
			f.sync("web")
			if n := counted.reads.Load(); n != 1 {
				t.Errorf("the sync selected the workloads %d times, want once", n)
			}
			if tc.want != "" && f.lastStatus().CurrStatus != tc.want {
				t.Errorf("currStatus %q written, want %q: the sync took another path", f.lastStatus().CurrStatus, tc.want)
			}
		})
	}
}
