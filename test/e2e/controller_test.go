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
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestRolloutOfEveryWorkloadKind: a tag move patches Deployment, StatefulSet,
// DaemonSet and CronJob to the digest-pinned image, the pods roll, status is
// Success, one history record and Events are written; a re-push of the same
// tag (new digest, same names) is a new rollout.
func TestRolloutOfEveryWorkloadKind(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/web")
	d1 := reg.MustPush(t, "team/web", "v1", "env-prod")

	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web-deploy", "web", repo+":old", 2), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.AppsV1().StatefulSets(e.NS).Create(e.Ctx, gen.NewStatefulSet(e.NS, "web-sts", "web", repo+":old"), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.AppsV1().DaemonSets(e.NS).Create(e.Ctx, gen.NewDaemonSet(e.NS, "web-ds", "web", repo+":old"), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.BatchV1().CronJobs(e.NS).Create(e.Ctx, gen.NewCronJob(e.NS, "web-cron", "web", repo+":old"), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	e.StartController(reg.Resolver(t))
	e.CreateCV(gen.NewCV(e.NS, "web", repo))
	cv := e.WaitStatus("web", cvv1.StatusSuccess, d1, 60*time.Second)
	want := gen.Pinned(repo, "v1", d1)
	assertAllKindsRun(e, want)
	if cv.Status.SuccessVersion != "v1" || cv.Status.SuccessDigest != d1 {
		t.Errorf("success fields: %q %q", cv.Status.SuccessVersion, cv.Status.SuccessDigest)
	}
	e2eenv.AssertCondition(t, cv, cvv1.ConditionReady, metav1.ConditionTrue)

	// Move the tag: a new version.
	moved := time.Now()
	d2 := reg.MustPush(t, "team/web", "v2", "env-prod")
	e.Eventually(30*time.Second, "deployment patched to v2", func() (bool, error) {
		return e.DeploymentImage("web-deploy") == gen.Pinned(repo, "v2", d2), nil
	})
	patched := time.Since(moved)
	e.WaitStatus("web", cvv1.StatusSuccess, d2, 60*time.Second)
	t.Logf("tag move → Deployment patched in %s (poll interval 5 s), → rollout finished in %s", patched.Round(time.Millisecond), time.Since(moved).Round(time.Millisecond))
	assertAllKindsRun(e, gen.Pinned(repo, "v2", d2))

	// Re-push env-prod and v2 with new content: same names, new digest.
	d3 := reg.MustPush(t, "team/web", "v2", "env-prod")
	if d3 == d2 {
		t.Fatal("registry returned the same digest for new content")
	}
	e.WaitStatus("web", cvv1.StatusSuccess, d3, 60*time.Second)
	assertAllKindsRun(e, gen.Pinned(repo, "v2", d3))

	records := e.History("web")
	if len(records) != 3 {
		t.Fatalf("want 3 history records, got %d: %+v", len(records), records)
	}
	if records[0].ToDigest != d3 || records[0].FromDigest != d2 || records[0].Outcome != "Success" {
		t.Errorf("newest record: %+v", records[0])
	}
	e.WaitEvents("web", map[string]int{controller.ReasonRolloutStarted: 3, controller.ReasonRolloutSucceeded: 3})
}

func assertAllKindsRun(e *e2eenv.Env, image string) {
	e.T.Helper()
	e.Eventually(30*time.Second, "all kinds at "+image, func() (bool, error) {
		sts, err := e.Kube.AppsV1().StatefulSets(e.NS).Get(e.Ctx, "web-sts", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ds, err := e.Kube.AppsV1().DaemonSets(e.NS).Get(e.Ctx, "web-ds", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cj, err := e.Kube.BatchV1().CronJobs(e.NS).Get(e.Ctx, "web-cron", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got := []string{
			e.DeploymentImage("web-deploy"),
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
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/api")
	d1 := reg.MustPush(t, "team/api", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "api", "api", repo+":old", 2), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.StartController(reg.Resolver(t))
	e.CreateCV(gen.NewCV(e.NS, "api", repo, func(s *cvv1.ContainerVersionSpec) {
		s.TimeoutSeconds = 8
		s.Rollback.Enabled = true
	}))
	e.WaitStatus("api", cvv1.StatusSuccess, d1, 60*time.Second)

	// kwok keeps pods of images containing "unready" in ImagePullBackOff.
	bad := reg.MustPush(t, "team/api", "v2-unready", "env-prod")
	cv := e.WaitStatus("api", cvv1.StatusFailed, bad, 60*time.Second)
	if cv.Status.FailedDigest != bad {
		t.Errorf("failedDigest = %q, want %q", cv.Status.FailedDigest, bad)
	}
	e2eenv.AssertCondition(t, cv, cvv1.ConditionDegraded, metav1.ConditionTrue)
	if got := e.DeploymentImage("api"); got != gen.Pinned(repo, "v1", d1) {
		t.Fatalf("not rolled back: image %s", got)
	}

	// Polls that still see the failed digest do not try it again: three
	// polls seen at the registry, so the first two ran to their end.
	gen := e.DeploymentGeneration("api")
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 3, 30*time.Second)
	if got := e.DeploymentGeneration("api"); got != gen {
		t.Errorf("failed version retried: deployment generation %d → %d", gen, got)
	}
	if got := e.GetCV("api").Status.CurrStatus; got != cvv1.StatusFailed {
		t.Errorf("status after polls = %s, want Failed", got)
	}

	d3 := reg.MustPush(t, "team/api", "v3", "env-prod")
	e.WaitStatus("api", cvv1.StatusSuccess, d3, 60*time.Second)
	records := e.History("api")
	outcomes := []string{}
	for _, r := range records {
		outcomes = append(outcomes, r.Outcome+":"+r.ToVersion)
	}
	if strings.Join(outcomes, ",") != "Success:v3,RolledBack:v2-unready,Success:v1" {
		t.Errorf("history outcomes: %v", outcomes)
		for _, r := range records {
			t.Logf("record %s rollout %q trigger %s workload %q %s→%s %s at %s", r.ID, r.Rollout, r.Trigger, r.Workload,
				r.FromVersion, r.ToVersion, r.Outcome, r.Time.Format(time.RFC3339Nano))
		}
	}
	e.WaitEvents("api", map[string]int{controller.ReasonRolledBack: 1, controller.ReasonRolloutFailed: 1})
}

// TestRestartMidRolloutFinishesOnce: a controller stopped after it patched
// the Deployment and before the rollout finished; a new controller resumes:
// the Deployment is patched once and history has one record.
func TestRestartMidRolloutFinishesOnce(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/slow")
	d1 := reg.MustPush(t, "team/slow", "v1", "env-prod")
	dep := gen.NewDeployment(e.NS, "slow", "slow", repo+":old", 2)
	dep.Spec.MinReadySeconds = 4 // keeps the rollout open long enough to interrupt
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, dep, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	gen0 := e.DeploymentGeneration("slow")

	stop := e.StartController(reg.Resolver(t))
	e.CreateCV(gen.NewCV(e.NS, "slow", repo))
	e.Eventually(20*time.Second, "deployment patched", func() (bool, error) {
		return e.DeploymentImage("slow") == gen.Pinned(repo, "v1", d1), nil
	})
	stop()
	if cv := e.GetCV("slow"); cv.Status.Rollout == nil {
		t.Fatalf("rollout finished before the restart; the test needs it open: %+v", cv.Status)
	}

	e.StartController(reg.Resolver(t))
	e.WaitStatus("slow", cvv1.StatusSuccess, d1, 60*time.Second)
	if got := e.DeploymentGeneration("slow"); got != gen0+1 {
		t.Errorf("deployment patched %d times, want once", got-gen0)
	}
	if records := e.History("slow"); len(records) != 1 {
		t.Errorf("want exactly 1 history record, got %d", len(records))
	}
}

// TestDeletedCVStopsPollingAndHistoryIsCollected: deleting the CV stops its
// syncer (no more registry requests) and the history ConfigMap goes with it.
func TestDeletedCVStopsPollingAndHistoryIsCollected(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/gone")
	d1 := reg.MustPush(t, "team/gone", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "gone", "gone", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	m := newMetricsCapture()
	e.StartController(reg.Resolver(t), m.use)
	e.CreateCV(gen.NewCV(e.NS, "gone", repo))
	e.WaitStatus("gone", cvv1.StatusSuccess, d1, 60*time.Second)
	if len(e.History("gone")) != 1 {
		t.Fatal("no history record")
	}

	// A witness CV on another repository of the same registry keeps
	// polling: once it has polled three times, the deleted CV's polls
	// would have come too.
	dw := reg.MustPush(t, "team/witness", "v1", "env-prod")
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "witness", "witness", reg.Repo("team/witness")+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "witness", reg.Repo("team/witness")))
	e.WaitStatus("witness", cvv1.StatusSuccess, dw, 60*time.Second)
	e.Eventually(10*time.Second, "two syncers", func() (bool, error) { return m.syncers() == 2, fmt.Errorf("%v syncers", m.syncers()) })

	e2eenv.Must(t, e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Delete(e.Ctx, "gone", metav1.DeleteOptions{}))
	e.Eventually(10*time.Second, "syncer stopped", func() (bool, error) { return m.syncers() == 1, fmt.Errorf("%v syncers", m.syncers()) })
	before, witness := reg.CountFor("HEAD", "manifests", "team/gone")+reg.CountFor("GET", "manifests", "team/gone"), reg.CountFor("HEAD", "manifests", "team/witness")
	e.Eventually(30*time.Second, "three polls of the witness", func() (bool, error) {
		return reg.CountFor("HEAD", "manifests", "team/witness")-witness >= 3, nil
	})
	if after := reg.CountFor("HEAD", "manifests", "team/gone") + reg.CountFor("GET", "manifests", "team/gone"); after != before {
		t.Errorf("registry asked %d more times for the deleted CV's image while the witness polled three times", after-before)
	}
	e.Eventually(90*time.Second, "history ConfigMap garbage-collected", func() (bool, error) {
		_, err := e.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "gone.history", metav1.GetOptions{})
		return err != nil, nil
	})
}

// TestLeaderElectionHandsOver: two controllers share a Lease; only the
// leader acts; when it stops, the other takes over and rolls out.
func TestLeaderElectionHandsOver(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/ha")
	d1 := reg.MustPush(t, "team/ha", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "ha", "ha", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	le := controller.LeaderElection{Enabled: true, Namespace: "cvmanager-system", Name: "lease-" + e.NS,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	a := e.StartElected(reg, le, "a")
	b := e.StartElected(reg, le, "b")
	e.CreateCV(gen.NewCV(e.NS, "ha", repo))
	e.WaitStatus("ha", cvv1.StatusSuccess, d1, 60*time.Second)
	if a.State.IsLeader() == b.State.IsLeader() {
		t.Fatalf("leaders: a=%v b=%v; want exactly one", a.State.IsLeader(), b.State.IsLeader())
	}
	leader, standby := a, b
	if b.State.IsLeader() {
		leader, standby = b, a
	}
	stoppedAt := time.Now()
	leader.Stop()
	e.Eventually(10*time.Second, "standby takes the lease", func() (bool, error) { return standby.State.IsLeader(), nil })
	t.Logf("lease handed over in %s", time.Since(stoppedAt).Round(time.Millisecond))
	d2 := reg.MustPush(t, "team/ha", "v2", "env-prod")
	e.WaitStatus("ha", cvv1.StatusSuccess, d2, 60*time.Second)
}
