// Package e2e runs the controller against the real local control plane
// (kwok pods) and a real in-process registry, under the shipped RBAC.
package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/history"
)

// TestRolloutOfEveryWorkloadKind: a tag move patches Deployment, StatefulSet,
// DaemonSet and CronJob to the digest-pinned image, the pods roll, status is
// Success, one history record and Events are written; a re-push of the same
// tag (new digest, same names) is a new rollout.
func TestRolloutOfEveryWorkloadKind(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	repo := reg.repo("team/web")
	d1 := reg.push(t, "team/web", "v1", "env-prod")

	_, err := e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "web-deploy", "web", repo+":old", 2), metav1.CreateOptions{})
	must(t, err)
	_, err = e.kube.AppsV1().StatefulSets(e.ns).Create(e.ctx, newStatefulSet(e.ns, "web-sts", "web", repo+":old"), metav1.CreateOptions{})
	must(t, err)
	_, err = e.kube.AppsV1().DaemonSets(e.ns).Create(e.ctx, newDaemonSet(e.ns, "web-ds", "web", repo+":old"), metav1.CreateOptions{})
	must(t, err)
	_, err = e.kube.BatchV1().CronJobs(e.ns).Create(e.ctx, newCronJob(e.ns, "web-cron", "web", repo+":old"), metav1.CreateOptions{})
	must(t, err)

	e.startController(reg.resolver(t))
	e.createCV(newCV(e.ns, "web", repo))
	cv := e.waitStatus("web", cvv1.StatusSuccess, d1, 60*time.Second)
	want := pinned(repo, "v1", d1)
	e.assertAllKindsRun(want)
	if cv.Status.SuccessVersion != "v1" || cv.Status.SuccessDigest != d1 {
		t.Errorf("success fields: %q %q", cv.Status.SuccessVersion, cv.Status.SuccessDigest)
	}
	assertCondition(t, cv, cvv1.ConditionReady, metav1.ConditionTrue)

	// Move the tag: a new version.
	moved := time.Now()
	d2 := reg.push(t, "team/web", "v2", "env-prod")
	e.eventually(30*time.Second, "deployment patched to v2", func() (bool, error) {
		return e.deploymentImage("web-deploy") == pinned(repo, "v2", d2), nil
	})
	patched := time.Since(moved)
	e.waitStatus("web", cvv1.StatusSuccess, d2, 60*time.Second)
	t.Logf("tag move → Deployment patched in %s (poll interval 5 s), → rollout finished in %s", patched.Round(time.Millisecond), time.Since(moved).Round(time.Millisecond))
	e.assertAllKindsRun(pinned(repo, "v2", d2))

	// Re-push env-prod and v2 with new content: same names, new digest.
	d3 := reg.push(t, "team/web", "v2", "env-prod")
	if d3 == d2 {
		t.Fatal("registry returned the same digest for new content")
	}
	e.waitStatus("web", cvv1.StatusSuccess, d3, 60*time.Second)
	e.assertAllKindsRun(pinned(repo, "v2", d3))

	records := e.history("web")
	if len(records) != 3 {
		t.Fatalf("want 3 history records, got %d: %+v", len(records), records)
	}
	if records[0].ToDigest != d3 || records[0].FromDigest != d2 || records[0].Outcome != "Success" {
		t.Errorf("newest record: %+v", records[0])
	}
	if reasons := e.eventReasons("web"); reasons[controller.ReasonRolloutStarted] < 3 || reasons[controller.ReasonRolloutSucceeded] < 3 {
		t.Errorf("events: %v", reasons)
	}
}

func (e *env) assertAllKindsRun(image string) {
	e.t.Helper()
	e.eventually(30*time.Second, "all kinds at "+image, func() (bool, error) {
		sts, err := e.kube.AppsV1().StatefulSets(e.ns).Get(e.ctx, "web-sts", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ds, err := e.kube.AppsV1().DaemonSets(e.ns).Get(e.ctx, "web-ds", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cj, err := e.kube.BatchV1().CronJobs(e.ns).Get(e.ctx, "web-cron", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got := []string{
			e.deploymentImage("web-deploy"),
			sts.Spec.Template.Spec.Containers[0].Image,
			ds.Spec.Template.Spec.Containers[0].Image,
			cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image,
		}
		for _, img := range got {
			if img != image {
				return false, fmt.Errorf("images %v", got)
			}
		}
		return true, nil
	})
}

// TestFailedRolloutRollsBackAndIsNotRetried: pods of the new version never
// become Ready → Failed after the timeout, rolled back to the last good
// digest, not retried on later polls, and a newer version rolls out.
func TestFailedRolloutRollsBackAndIsNotRetried(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	repo := reg.repo("team/api")
	d1 := reg.push(t, "team/api", "v1", "env-prod")
	_, err := e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "api", "api", repo+":old", 2), metav1.CreateOptions{})
	must(t, err)
	e.startController(reg.resolver(t))
	e.createCV(newCV(e.ns, "api", repo, func(s *cvv1.ContainerVersionSpec) {
		s.TimeoutSeconds = 8
		s.Rollback.Enabled = true
	}))
	e.waitStatus("api", cvv1.StatusSuccess, d1, 60*time.Second)

	// kwok keeps pods of images containing "unready" in ImagePullBackOff.
	bad := reg.push(t, "team/api", "v2-unready", "env-prod")
	cv := e.waitStatus("api", cvv1.StatusFailed, bad, 60*time.Second)
	if cv.Status.FailedDigest != bad {
		t.Errorf("failedDigest = %q, want %q", cv.Status.FailedDigest, bad)
	}
	assertCondition(t, cv, cvv1.ConditionDegraded, metav1.ConditionTrue)
	if got := e.deploymentImage("api"); got != pinned(repo, "v1", d1) {
		t.Fatalf("not rolled back: image %s", got)
	}

	// Two more polls: the failed digest is not tried again.
	gen := e.deploymentGeneration("api")
	time.Sleep(11 * time.Second)
	if got := e.deploymentGeneration("api"); got != gen {
		t.Errorf("failed version retried: deployment generation %d → %d", gen, got)
	}
	if got := e.getCV("api").Status.CurrStatus; got != cvv1.StatusFailed {
		t.Errorf("status after polls = %s, want Failed", got)
	}

	d3 := reg.push(t, "team/api", "v3", "env-prod")
	e.waitStatus("api", cvv1.StatusSuccess, d3, 60*time.Second)
	records := e.history("api")
	outcomes := []string{}
	for _, r := range records {
		outcomes = append(outcomes, r.Outcome+":"+r.ToVersion)
	}
	if strings.Join(outcomes, ",") != "Success:v3,RolledBack:v2-unready,Success:v1" {
		t.Errorf("history outcomes: %v", outcomes)
	}
	if reasons := e.eventReasons("api"); reasons[controller.ReasonRolledBack] == 0 || reasons[controller.ReasonRolloutFailed] == 0 {
		t.Errorf("events: %v", reasons)
	}
}

// TestRestartMidRolloutFinishesOnce: a controller stopped after it patched
// the Deployment and before the rollout finished; a new controller resumes:
// the Deployment is patched once and history has one record.
func TestRestartMidRolloutFinishesOnce(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	repo := reg.repo("team/slow")
	d1 := reg.push(t, "team/slow", "v1", "env-prod")
	dep := newDeployment(e.ns, "slow", "slow", repo+":old", 2)
	dep.Spec.MinReadySeconds = 4 // keeps the rollout open long enough to interrupt
	_, err := e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, dep, metav1.CreateOptions{})
	must(t, err)
	gen0 := e.deploymentGeneration("slow")

	stop := e.startController(reg.resolver(t))
	e.createCV(newCV(e.ns, "slow", repo))
	e.eventually(20*time.Second, "deployment patched", func() (bool, error) {
		return e.deploymentImage("slow") == pinned(repo, "v1", d1), nil
	})
	stop()
	if cv := e.getCV("slow"); cv.Status.Rollout == nil {
		t.Fatalf("rollout finished before the restart; the test needs it open: %+v", cv.Status)
	}

	e.startController(reg.resolver(t))
	e.waitStatus("slow", cvv1.StatusSuccess, d1, 60*time.Second)
	if got := e.deploymentGeneration("slow"); got != gen0+1 {
		t.Errorf("deployment patched %d times, want once", got-gen0)
	}
	if records := e.history("slow"); len(records) != 1 {
		t.Errorf("want exactly 1 history record, got %d", len(records))
	}
}

// TestDeletedCVStopsPollingAndHistoryIsCollected: deleting the CV stops its
// syncer (no more registry requests) and the history ConfigMap goes with it.
func TestDeletedCVStopsPollingAndHistoryIsCollected(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	repo := reg.repo("team/gone")
	d1 := reg.push(t, "team/gone", "v1", "env-prod")
	_, err := e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "gone", "gone", repo+":old", 1), metav1.CreateOptions{})
	must(t, err)
	m := newMetricsCapture()
	e.startController(reg.resolver(t), m.use)
	e.createCV(newCV(e.ns, "gone", repo))
	e.waitStatus("gone", cvv1.StatusSuccess, d1, 60*time.Second)
	if len(e.history("gone")) != 1 {
		t.Fatal("no history record")
	}

	must(t, e.cvClient.CvmanagerV1alpha1().ContainerVersions(e.ns).Delete(e.ctx, "gone", metav1.DeleteOptions{}))
	e.eventually(10*time.Second, "syncer stopped", func() (bool, error) { return m.syncers() == 0, nil })
	before := reg.requests()
	time.Sleep(11 * time.Second) // two poll intervals
	if after := reg.requests(); after != before {
		t.Errorf("registry asked %d more times after the CV was deleted", after-before)
	}
	e.eventually(90*time.Second, "history ConfigMap garbage-collected", func() (bool, error) {
		_, err := e.kube.CoreV1().ConfigMaps(e.ns).Get(e.ctx, "gone.history", metav1.GetOptions{})
		return err != nil, nil
	})
}

// TestLeaderElectionHandsOver: two controllers share a Lease; only the
// leader acts; when it stops, the other takes over and rolls out.
func TestLeaderElectionHandsOver(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	repo := reg.repo("team/ha")
	d1 := reg.push(t, "team/ha", "v1", "env-prod")
	_, err := e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "ha", "ha", repo+":old", 1), metav1.CreateOptions{})
	must(t, err)

	le := controller.LeaderElection{Enabled: true, Namespace: "cvmanager-system", Name: "lease-" + e.ns,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	a := e.startElected(reg, le, "a")
	b := e.startElected(reg, le, "b")
	e.createCV(newCV(e.ns, "ha", repo))
	e.waitStatus("ha", cvv1.StatusSuccess, d1, 60*time.Second)
	if a.state.IsLeader() == b.state.IsLeader() {
		t.Fatalf("leaders: a=%v b=%v; want exactly one", a.state.IsLeader(), b.state.IsLeader())
	}
	leader, standby := a, b
	if b.state.IsLeader() {
		leader, standby = b, a
	}
	stoppedAt := time.Now()
	leader.stop()
	e.eventually(10*time.Second, "standby takes the lease", func() (bool, error) { return standby.state.IsLeader(), nil })
	t.Logf("lease handed over in %s", time.Since(stoppedAt).Round(time.Millisecond))
	d2 := reg.push(t, "team/ha", "v2", "env-prod")
	e.waitStatus("ha", cvv1.StatusSuccess, d2, 60*time.Second)
}

func (e *env) deploymentGeneration(name string) int64 {
	e.t.Helper()
	d, err := e.kube.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	must(e.t, err)
	return d.Generation
}

func (e *env) history(cvName string) []history.Record {
	e.t.Helper()
	records, err := history.NewStore(e.kube).List(e.ctx, e.ns, cvName+".history")
	must(e.t, err)
	return records
}

func assertCondition(t *testing.T, cv *cvv1.ContainerVersion, condType string, want metav1.ConditionStatus) {
	t.Helper()
	for _, c := range cv.Status.Conditions {
		if c.Type == condType {
			if c.Status != want {
				t.Errorf("condition %s = %s (%s: %s), want %s", condType, c.Status, c.Reason, c.Message, want)
			}
			return
		}
	}
	t.Errorf("condition %s missing: %+v", condType, cv.Status.Conditions)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
