package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/writeback"
)

func withWriteBack(s *cvv1.ContainerVersionSpec) {
	s.WriteBack = &cvv1.WriteBackSpec{URL: "https://git.example/team/deploy.git",
		Targets: []cvv1.WriteBackTarget{{Path: "web/kustomization.yaml", Kind: cvv1.TargetKustomize, ImageName: "web"}}}
}

// writeBackOf summarises what a decision does about git.
func writeBackOf(d decision) (state, rolloutID string, submitted, rolledBack bool) {
	if st := d.cv.Status.WriteBack; st != nil {
		state, rolloutID = st.State, st.RolloutID
	}
	for _, e := range d.effects {
		if e.writeBack != nil {
			submitted, rolledBack = true, e.writeBack.rolledBack
		}
	}
	return state, rolloutID, submitted, rolledBack
}

// TestWriteBackFollowsWhatPassed: git hears of a rollout only once it
// passed (recorded Pending in the finish's own status write, submitted
// after it) or once a rollback restored the previous image; a failed
// rollout writes nothing; outcomes are recorded by the next sync; a failed
// write waits its backoff and never touches the rollout.
func TestWriteBackFollowsWhatPassed(t *testing.T) {
	started := t0.Add(-10 * time.Second)
	rollingOutWithID := func() cvv1.ContainerVersionStatus {
		st := rollingOut(started)
		st.Rollout.ID = "r2"
		st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r1", Version: "v1", Digest: digest1}
		return st
	}
	type got struct {
		State, RolloutID      string
		Submitted, RolledBack bool
		// Record is the write-back the finish's history record carries;
		// History the outcome put into the records of its rollout.
		Record, History *history.WriteBack
	}
	for _, tc := range []struct {
		name string
		snap *snapshot
		want got
	}{{
		name: "success: Pending in the finish's status write, submitted after it",
		snap: underWay(rollingOutWithID(), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Succeeded, "RolloutComplete")}}, withWriteBack),
		want: got{State: cvv1.WriteBackPending, RolloutID: "r2", Submitted: true,
			Record: &history.WriteBack{RolloutID: "r2", State: cvv1.WriteBackPending}},
	}, {
		name: "failed rollout: nothing is written, git keeps v1",
		snap: underWay(rollingOutWithID(), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Failed, "CrashLoopBackOff")}}, withWriteBack),
		want: got{State: cvv1.WriteBackWritten, RolloutID: "r1"},
	}, {
		name: "rolled back: the restored image is written under the failed rollout's ID",
		snap: func() *snapshot {
			st := rollingBack(started)
			st.Rollout.ID = "r2"
			st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r1", Version: "v1", Digest: digest1}
			return underWay(st, stubPlanner{revert: rollout.Plan{Progress: progress(rollout.Succeeded, "")}}, withWriteBack)
		}(),
		want: got{State: cvv1.WriteBackPending, RolloutID: "r2", Submitted: true, RolledBack: true,
			Record: &history.WriteBack{RolloutID: "r2", State: cvv1.WriteBackPending}},
	}, {
		name: "the writer reported Written: recorded, nothing submitted",
		snap: func() *snapshot {
			st := polled()
			st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: "r1", Version: "v1", Digest: digest1}
			s := &snapshot{cv: webCV(st, withWriteBack), now: t0}
			s.writeBackResult = &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r1", Version: "v1", Digest: digest1, Commit: "abc123"}
			return s
		}(),
		want: got{State: cvv1.WriteBackWritten, RolloutID: "r1",
			History: &history.WriteBack{RolloutID: "r1", State: cvv1.WriteBackWritten, Commit: "abc123"}},
	}, {
		name: "the writer reported a pull request: its URL goes to the history",
		snap: func() *snapshot {
			st := polled()
			st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: "r1", Version: "v1", Digest: digest1}
			s := &snapshot{cv: webCV(st, withWriteBack), now: t0}
			s.writeBackResult = &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r1", Version: "v1", Digest: digest1,
				Commit: "abc123", PullRequestURL: "https://git.example/team/deploy/pull/7"}
			return s
		}(),
		want: got{State: cvv1.WriteBackWritten, RolloutID: "r1", History: &history.WriteBack{RolloutID: "r1",
			State: cvv1.WriteBackWritten, Commit: "abc123", URL: "https://git.example/team/deploy/pull/7"}},
	}, {
		name: "an outcome of a superseded write goes to its own history record, not to status",
		snap: func() *snapshot {
			st := polled()
			submitted := metav1Time(t0.Add(-time.Second))
			st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: "r1", Version: "v1", Digest: digest1, Time: &submitted}
			s := &snapshot{cv: webCV(st, withWriteBack), now: t0}
			s.writeBackResult = &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r0", Version: "v0", Digest: digest2, Commit: "0ld"}
			return s
		}(),
		want: got{State: cvv1.WriteBackPending, RolloutID: "r1",
			History: &history.WriteBack{RolloutID: "r0", State: cvv1.WriteBackWritten, Commit: "0ld"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := plan(tc.snap)
			state, id, submitted, rolledBack := writeBackOf(d)
			var record *history.WriteBack
			if d.record != nil {
				record = d.record.writeBack
			}
			if diff := cmp.Diff(tc.want, got{state, id, submitted, rolledBack, record, d.historyWriteBack}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestFailedWriteBackWaitsItsBackoff: a failed write is recorded with a
// Warning and WriteBack=False, and resubmitted only after its backoff.
func TestFailedWriteBackWaitsItsBackoff(t *testing.T) {
	st := polled()
	st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: "r1", Version: "v1", Digest: digest1}
	failedAt := metav1Time(t0)
	snap := &snapshot{cv: webCV(st, withWriteBack), now: t0, writeBackResult: &cvv1.WriteBackStatus{State: cvv1.WriteBackFailed,
		RolloutID: "r1", Version: "v1", Digest: digest1, Reason: "https://git.example/team/deploy.git: authentication required", Attempts: 1, Time: &failedAt}}
	d := plan(snap)
	if want := (&history.WriteBack{RolloutID: "r1", State: cvv1.WriteBackFailed, Reason: snap.writeBackResult.Reason}); !cmp.Equal(want, d.historyWriteBack) {
		t.Errorf("history write-back %+v, want the failure %+v", d.historyWriteBack, want)
	}
	cond := findCondition(d.cv.Status.Conditions, ConditionWriteBack)
	if cond == nil || cond.Status != "False" || d.cv.Status.WriteBack.State != cvv1.WriteBackFailed {
		t.Fatalf("condition %+v status %+v: want WriteBack=False and Failed recorded", cond, d.cv.Status.WriteBack)
	}
	if d.requeue != writeback.Backoff(1) {
		t.Errorf("requeue %s, want the backoff %s", d.requeue, writeback.Backoff(1))
	}
	if _, _, submitted, _ := writeBackOf(d); submitted {
		t.Error("resubmitted before the backoff")
	}
	later := &snapshot{cv: webCV(func() cvv1.ContainerVersionStatus { s := polled(); s.WriteBack = d.cv.Status.WriteBack; return s }(), withWriteBack),
		now: t0.Add(writeback.Backoff(1))}
	if _, _, submitted, _ := writeBackOf(plan(later)); !submitted {
		t.Error("not resubmitted once the backoff passed")
	}
	var e error = errors.New(reasonOnly(errors.New("secret value s3cr3t")))
	if e.Error() == "secret value s3cr3t" {
		t.Error("reasonOnly passed an error's text through")
	}
}

func metav1Time(t time.Time) metav1.Time { return metav1.NewTime(t) }

// TestWriteBackOutcomeReachesTheHistory: the sync that records the writer's
// outcome in status also puts the commit into the rollout's history record
// (one read and one update of the workload's history, and the one status
// write), leaving the records of other rollouts alone.
func TestWriteBackOutcomeReachesTheHistory(t *testing.T) {
	st := deployed()
	st.LastPolled = &metav1.Time{Time: t0}
	st.WriteBack = &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: "r1", Version: "v1", Digest: digest1}
	cv := webCV(st, withWriteBack)
	records := []history.Record{
		{ID: "a-web", Rollout: "a", CV: "web", Time: t0.Add(-time.Minute), Workload: "Deployment/web", ToDigest: digest1,
			Outcome: history.OutcomeSuccess, WriteBack: &history.WriteBack{RolloutID: "r1", State: cvv1.WriteBackPending}},
		{ID: "b-web", Rollout: "b", CV: "web", Time: t0.Add(-time.Hour), Workload: "Deployment/web", ToDigest: digest2,
			Outcome: history.OutcomeSuccess, WriteBack: &history.WriteBack{RolloutID: "r0", State: cvv1.WriteBackWritten, Commit: "0ld"}},
	}
	data, err := history.Encode(records)
	if err != nil {
		t.Fatal(err)
	}
	hist := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: history.WorkloadConfigMapName("web")}, Data: data}
	f := newFixture(t, poller.ResolvedImage{Digest: digest1, Version: "v1"}, cv, webDeployment(pinned("v1", digest1), true), hist)
	f.c.ReportWriteBack(ns+"/web", cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: "r1", Version: "v1", Digest: digest1, Commit: "9b1e0c"})
	f.sync("web")

	var configMaps []string
	for _, a := range actions(f.kube) {
		if strings.Contains(a, "configmaps") {
			configMaps = append(configMaps, a)
		}
	}
	if diff := cmp.Diff([]string{"get configmaps web.history", "update configmaps web.history"}, configMaps); diff != "" {
		t.Errorf("history actions (-want +got):\n%s", diff)
	}
	if got := f.lastStatus().WriteBack; got == nil || got.State != cvv1.WriteBackWritten || got.Commit != "9b1e0c" {
		t.Errorf("status.writeBack %+v, want Written 9b1e0c", got)
	}
	stored, err := history.NewStore(f.kube).List(context.Background(), ns, "web.history")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]history.WriteBack{"a-web": {RolloutID: "r1", State: cvv1.WriteBackWritten, Commit: "9b1e0c"},
		"b-web": {RolloutID: "r0", State: cvv1.WriteBackWritten, Commit: "0ld"}}
	got := map[string]history.WriteBack{}
	for _, r := range stored {
		got[r.ID] = *r.WriteBack
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history write-backs (-want +got):\n%s", diff)
	}
}
