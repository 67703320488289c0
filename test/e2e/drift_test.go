package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// setImage changes the "app" container's image as `kubectl set image` does,
// under the given field manager.
func setImage(e *e2eenv.Env, name, image, manager string) {
	e.T.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	_, err := e.Kube.AppsV1().Deployments(e.NS).Patch(e.Ctx, name, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: manager})
	e2eenv.Must(e.T, err)
}

// deployedApp runs the controller over one Deployment "web" and a CV that
// rolled v1 out to it, with a poll interval far longer than the test so
// everything that follows is seen from the workload informers alone.
func deployedApp(t *testing.T, edit ...func(*cvv1.ContainerVersionSpec)) (e *e2eenv.Env, repo, want string, reg *e2eenv.Registry) {
	e = e2eenv.New(t)
	reg = e2eenv.NewRegistry(t)
	repo = reg.Repo("team/drift")
	d1 := reg.MustPush(t, "team/drift", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", repo+":old", 2), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.StartController(reg.Resolver(t))
	e.CreateCV(gen.NewCV(e.NS, "web", repo, append([]func(*cvv1.ContainerVersionSpec){func(s *cvv1.ContainerVersionSpec) {
		s.PollIntervalSeconds = 3600
	}}, edit...)...))
	e.WaitStatus("web", cvv1.StatusSuccess, d1, 60*time.Second)
	return e, repo, gen.Pinned(repo, "v1", d1), reg
}

// TestDriftIsRestored: `kubectl set image` back to an older image is
// undone within seconds, with no registry poll, through the strategy; the
// history records trigger drift and Events say what happened.
func TestDriftIsRestored(t *testing.T) {
	e, repo, want, _ := deployedApp(t)
	drifted := time.Now()
	setImage(e, "web", repo+":old", "kubectl-set")
	e.Eventually(30*time.Second, "drift restored", func() (bool, error) {
		return e.DeploymentImage("web") == want, nil
	})
	restored := time.Since(drifted)
	cv := e.WaitStatus("web", cvv1.StatusSuccess, e.GetCV("web").Status.SuccessDigest, 30*time.Second)
	e.Eventually(30*time.Second, "history record of the drift", func() (bool, error) {
		recs := e.History("web")
		return len(recs) == 2 && recs[0].Trigger == history.TriggerDrift && recs[0].Outcome == history.OutcomeSuccess, nil
	})
	recorded := time.Since(drifted)
	e.Eventually(10*time.Second, "DriftDetected and DriftRestored Events", func() (bool, error) {
		reasons := e.EventReasons("web")
		return reasons[controller.ReasonDriftDetected] >= 1 && reasons[controller.ReasonDriftRestored] >= 1, fmt.Errorf("events %v", reasons)
	})
	e2eenv.AssertCondition(t, cv, cvv1.ConditionReady, metav1.ConditionTrue)
	t.Logf("MEASURE drift → restored (workload runs the deployed digest again): %s; → restore recorded healthy in history: %s",
		restored.Round(time.Millisecond), recorded.Round(time.Millisecond))
}

// TestDriftIsReported: with driftPolicy Report the workload is left on
// what someone set, and the CV says so with the running image.
func TestDriftIsReported(t *testing.T) {
	e, repo, _, _ := deployedApp(t, func(s *cvv1.ContainerVersionSpec) { s.DriftPolicy = cvv1.DriftReport })
	setImage(e, "web", repo+":old", "kubectl-set")
	e.Eventually(30*time.Second, "Drifted condition", func() (bool, error) {
		cv := e.GetCV("web")
		return e2eenv.ConditionIs(cv, cvv1.ConditionDrifted, controller.ReasonDriftDetected), nil
	})
	cond := findCond(e.GetCV("web"), cvv1.ConditionDrifted)
	if !strings.Contains(cond.Message, repo+":old") {
		t.Errorf("Drifted message does not name the running image: %q", cond.Message)
	}
	// A second change: the message names it once the controller has seen
	// it, which is the evidence that the sync ran; the workload is left.
	setImage(e, "web", repo+":older", "kubectl-set")
	e.Eventually(30*time.Second, "Drifted names the second image", func() (bool, error) {
		cond := findCond(e.GetCV("web"), cvv1.ConditionDrifted)
		return strings.Contains(cond.Message, repo+":older"), fmt.Errorf("%+v", cond)
	})
	if got := e.DeploymentImage("web"); got != repo+":older" {
		t.Errorf("Report changed the workload to %s", got)
	}
}

// TestLateJoinerIsRolledOut: a Deployment created after the rollout, and
// one labelled to match later, are brought to the deployed digest with
// history trigger join; a workload that leaves the selector is left alone.
func TestLateJoinerIsRolledOut(t *testing.T) {
	e, repo, want, _ := deployedApp(t)
	joined := time.Now()
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web-late", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.Eventually(30*time.Second, "joiner rolled out", func() (bool, error) { return e.DeploymentImage("web-late") == want, nil })
	rolledOut := time.Since(joined)
	e.Eventually(30*time.Second, "history record of the join", func() (bool, error) {
		recs := e.History("web")
		return len(recs) == 2 && recs[0].Trigger == history.TriggerJoin && recs[0].Outcome == history.OutcomeSuccess, nil
	})
	finished := time.Since(joined)

	// Labelled later. A joiner created after it is the evidence: by the
	// time the joiner is rolled out, the controller's Deployment cache
	// (one informer, events in order) held web-relabel too, and left it.
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web-relabel", "other", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web-witness", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.Eventually(30*time.Second, "the joiner created after it rolled out", func() (bool, error) { return e.DeploymentImage("web-witness") == want, nil })
	if got := e.DeploymentImage("web-relabel"); got != repo+":old" {
		t.Fatalf("a workload outside the selector was changed to %s", got)
	}
	_, err = e.Kube.AppsV1().Deployments(e.NS).Patch(e.Ctx, "web-relabel", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"web"}}}`), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	e.Eventually(30*time.Second, "relabelled joiner rolled out", func() (bool, error) { return e.DeploymentImage("web-relabel") == want, nil })

	// A leaver keeps whatever it runs afterwards.
	_, err = e.Kube.AppsV1().Deployments(e.NS).Patch(e.Ctx, "web-late", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"gone"}}}`), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	setImage(e, "web-late", repo+":mine", "kubectl-set")
	// Evidence the controller saw that change: a drift of a workload it
	// still selects, made after it, is restored; the leaver is not.
	setImage(e, "web", repo+":old", "kubectl-set")
	e.Eventually(30*time.Second, "the drift made after it restored", func() (bool, error) { return e.DeploymentImage("web") == want, nil })
	if got := e.DeploymentImage("web-late"); got != repo+":mine" {
		t.Errorf("a workload that left the selector was changed to %s", got)
	}
	t.Logf("MEASURE join → rolled out (created after the rollout): %s; → rollout recorded healthy in history: %s",
		rolledOut.Round(time.Millisecond), finished.Round(time.Millisecond))
}

// TestDriftFightIsDetected: another writer that re-sets the old image
// every time it is restored is detected after FightCorrections
// corrections; the controller stops and names the other field manager.
func TestDriftFightIsDetected(t *testing.T) {
	// Polled every 5 s: each poll is a sync of the CV, the evidence below
	// that the controller looked again and left the workload.
	e, repo, want, reg := deployedApp(t, func(s *cvv1.ContainerVersionSpec) { s.PollIntervalSeconds = 5 })
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	var reverts atomic.Int32
	go func() { // the other writer: a GitOps tool re-applying an older manifest
		for ctx.Err() == nil {
			// It re-applies once cvmanager's restore has finished, as a
			// GitOps tool's next sync would.
			cv, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Get(ctx, "web", metav1.GetOptions{})
			atRest := err == nil && cv.Status.Rollout == nil && cv.Status.CurrStatus == cvv1.StatusSuccess
			if atRest && e.DeploymentImage("web") == want {
				patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, repo+":old")
				if _, err := e.Kube.AppsV1().Deployments(e.NS).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch),
					metav1.PatchOptions{FieldManager: "argocd-controller"}); err == nil {
					reverts.Add(1)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	e.Eventually(90*time.Second, "DriftFight condition", func() (bool, error) {
		return e2eenv.ConditionIs(e.GetCV("web"), cvv1.ConditionDrifted, controller.ReasonDriftFight), nil
	})
	cond := findCond(e.GetCV("web"), cvv1.ConditionDrifted)
	if !strings.Contains(cond.Message, `"argocd-controller"`) {
		t.Errorf("DriftFight does not name the other writer: %q", cond.Message)
	}
	n := reverts.Load()
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 3, 30*time.Second)
	if got := reverts.Load(); got != n {
		t.Errorf("the controller kept correcting after the fight was detected: %d → %d reverts", n, got)
	}
	drifts := 0
	for _, r := range e.History("web") {
		if r.Trigger == history.TriggerDrift {
			drifts++
		}
	}
	if drifts != controller.FightCorrections {
		t.Errorf("%d drift corrections recorded, want %d", drifts, controller.FightCorrections)
	}
}

func findCond(cv *cvv1.ContainerVersion, condType string) metav1.Condition {
	for _, c := range cv.Status.Conditions {
		if c.Type == condType {
			return c
		}
	}
	return metav1.Condition{}
}
