// Package rollouts tests the blue-green strategy, verification Jobs and
// migration Jobs end to end on the real control plane: the Job controller
// runs the Jobs, kwok completes their pods (or fails them when the image
// contains "failjob"), and the controller runs under the shipped RBAC.
package rollouts

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}))
}

// blueGreenFixture creates web-blue (live, 2 replicas), web-green, the live
// Service web and the verification Service web-verify.
func blueGreenFixture(e *e2eenv.Env, app string) {
	e.T.Helper()
	for _, d := range []*appsv1.Deployment{
		gen.ColorDeployment(e.NS, app, "blue", "placeholder:v0", 2), gen.ColorDeployment(e.NS, app, "green", "placeholder:v0", 0),
	} {
		_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, d, metav1.CreateOptions{})
		e2eenv.Must(e.T, err)
	}
	for _, s := range gen.BlueGreenServices(e.NS, app) {
		_, err := e.Kube.CoreV1().Services(e.NS).Create(e.Ctx, s, metav1.CreateOptions{})
		e2eenv.Must(e.T, err)
	}
}

func blueGreenCV(e *e2eenv.Env, app, repo, verifier string) *cvv1.ContainerVersion {
	return gen.NewCV(e.NS, app, repo, gen.BlueGreen(app, verifier))
}

// selectorColor is the color a Service selects.
func selectorColor(e *e2eenv.Env, name string) string {
	e.T.Helper()
	svc, err := e.Kube.CoreV1().Services(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
	e2eenv.Must(e.T, err)
	return svc.Spec.Selector["color"]
}

// switchLog records, at each change of the live Service's color, whether
// the Deployment it now selects was fully Ready and its verification Job
// complete: the two things that must hold before traffic moves.
type switchLog struct {
	events chan string
}

func watchSwitches(e *e2eenv.Env, app string, replicas int32) switchLog {
	w, err := e.Kube.CoreV1().Services(e.NS).Watch(e.Ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + app})
	e2eenv.Must(e.T, err)
	log := switchLog{events: make(chan string, 16)}
	go func() {
		defer w.Stop()
		last := "blue"
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type != watch.Modified || svc.Spec.Selector["color"] == last {
				continue
			}
			last = svc.Spec.Selector["color"]
			log.events <- checkSwitch(e, app, last, replicas)
		}
	}()
	return log
}

// stepOrder is the order a blue-green rollout passes its steps in.
var stepOrder = []string{"PreVerified", "Migrated", rollout.StepSecondaryUpdated, rollout.StepSecondaryReady,
	rollout.StepVerified, rollout.StepScaledUp, rollout.StepSwitched}

// stepLog is what watchSteps saw of status.rollout.step.
type stepLog struct {
	mu        sync.Mutex
	seen      []string
	at        map[string]time.Time
	backwards []string
}

// watchSteps records when each status.rollout.step of a CV is first seen
// and every move back to an earlier step, which status must never show.
func watchSteps(e *e2eenv.Env, name string) *stepLog {
	w, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Watch(e.Ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	e2eenv.Must(e.T, err)
	log := &stepLog{at: map[string]time.Time{}}
	go func() {
		last := ""
		for ev := range w.ResultChan() {
			cv, ok := ev.Object.(*cvv1.ContainerVersion)
			if !ok || cv.Status.Rollout == nil || cv.Status.Rollout.Step == "" {
				last = ""
				continue
			}
			log.record(last, cv.Status.Rollout.Step)
			last = cv.Status.Rollout.Step
		}
	}()
	e.T.Cleanup(w.Stop)
	return log
}

func (l *stepLog) record(last, step string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.at[step]; !dup {
		l.at[step] = time.Now()
		l.seen = append(l.seen, step)
	}
	if slices.Index(stepOrder, step) < slices.Index(stepOrder, last) {
		l.backwards = append(l.backwards, last+" → "+step)
	}
}

// timings lists the steps relative to start (the step timings of a rollout).
func (l *stepLog) timings(start time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	parts := make([]string, 0, len(l.seen))
	for _, step := range l.seen {
		parts = append(parts, fmt.Sprintf("%s %s", step, l.at[step].Sub(start).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

func (l *stepLog) movesBack() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.backwards)
}

func checkSwitch(e *e2eenv.Env, app, color string, replicas int32) string {
	d, err := e.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, app+"-"+color, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	jobs, err := e.Kube.BatchV1().Jobs(e.NS).List(e.Ctx, metav1.ListOptions{
		LabelSelector: labels.Set{rollout.LabelCV: app, rollout.LabelPhase: rollout.PhaseVerifyAfter}.String()})
	if err != nil {
		return err.Error()
	}
	verified := false
	for _, j := range jobs.Items {
		verified = verified || (j.Annotations["cvmanager.dev/image"] == d.Spec.Template.Spec.Containers[0].Image && complete(&j))
	}
	return fmt.Sprintf("%s ready=%d/%d verified=%v", color, d.Status.ReadyReplicas, replicas, verified)
}

func complete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// next waits for the next switch of the live Service.
func (s switchLog) next(t *testing.T) string {
	t.Helper()
	select {
	case got := <-s.events:
		return got
	case <-time.After(60 * time.Second):
		t.Fatal("the live Service was never switched")
		return ""
	}
}

// TestBlueGreenSwitchesOnlyReadyVerifiedPods: two rollouts in a row. Each
// time the live Service moves to the other Deployment only once all its
// pods are Ready and verification passed, and the old side is scaled to 0.
func TestBlueGreenSwitchesOnlyReadyVerifiedPods(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/bg")
	blueGreenFixture(e, "web")
	switches := watchSwitches(e, "web", 2)
	d1 := reg.MustPush(t, "team/bg", "v1", "env-prod")
	start := time.Now()
	e.CreateCV(blueGreenCV(e, "web", repo, "verifier:ok"))
	e.StartController(reg.Resolver(t))

	cv := e.WaitStatus("web", cvv1.StatusSuccess, d1, 90*time.Second)
	t.Logf("first blue-green rollout (scale 0→1→2, verify, switch, scale down) took %s", time.Since(start).Round(time.Millisecond))
	if got := switches.next(t); got != "green ready=2/2 verified=true" {
		t.Errorf("at the switch to green: %s", got)
	}
	assertSide(e, "web-green", gen.Pinned(repo, "v1", d1), 2)
	assertSide(e, "web-blue", "placeholder:v0", 0)
	if color := selectorColor(e, "web-verify"); color != "green" {
		t.Errorf("verification Service selects %s, want green", color)
	}
	jobs := e.History("web")[0].Jobs
	assertJobs(t, jobs, 1)
	assertJobOutcome(t, jobs, "postverify-1", "Success")

	steps := watchSteps(e, "web")
	d2 := reg.MustPush(t, "team/bg", "v2", "env-prod")
	start = time.Now()
	e.WaitStatus("web", cvv1.StatusSuccess, d2, 90*time.Second)
	t.Logf("second blue-green rollout took %s; steps reached after the push: %s", time.Since(start).Round(time.Millisecond), steps.timings(start))
	if back := steps.movesBack(); len(back) > 0 {
		t.Errorf("status.rollout.step went backwards: %v", back)
	}
	if got := switches.next(t); got != "blue ready=2/2 verified=true" {
		t.Errorf("at the switch back to blue: %s", got)
	}
	assertSide(e, "web-blue", gen.Pinned(repo, "v2", d2), 2)
	assertSide(e, "web-green", gen.Pinned(repo, "v1", d1), 0)
	if cv.Status.Rollout != nil {
		t.Errorf("rollout left in status: %+v", cv.Status.Rollout)
	}
}

// TestBlueGreenFailedVerificationKeepsLiveTraffic: a version whose
// verification fails never receives live traffic; with rollback on, the
// secondary is put back on the last good version and scaled down.
func TestBlueGreenFailedVerificationKeepsLiveTraffic(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/bgfail")
	blueGreenFixture(e, "shop")
	d1 := reg.MustPush(t, "team/bgfail", "v1", "env-prod")
	cv := blueGreenCV(e, "shop", repo, "verifier:ok")
	cv.Spec.Rollback.Enabled = true
	e.CreateCV(cv)
	e.StartController(reg.Resolver(t))
	e.WaitStatus("shop", cvv1.StatusSuccess, d1, 90*time.Second)

	setVerifier(e, "shop", "verifier:failjob")
	d2 := reg.MustPush(t, "team/bgfail", "v2", "env-prod")
	failed := e.WaitStatus("shop", cvv1.StatusFailed, d2, 90*time.Second)
	if color := selectorColor(e, "shop"); color != "green" {
		t.Errorf("live Service moved to %s on a failed verification", color)
	}
	assertSide(e, "shop-green", gen.Pinned(repo, "v1", d1), 2)
	assertSide(e, "shop-blue", gen.Pinned(repo, "v1", d1), 0)
	rec := e.History("shop")[0]
	if rec.Outcome != "RolledBack" || !strings.Contains(rec.Reason, "VerificationFailed") || !strings.Contains(rec.Reason, "live Service shop untouched") {
		t.Errorf("history record: outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	assertJobs(t, rec.Jobs, 1)
	assertJobOutcome(t, rec.Jobs, "postverify-1", "Failed")
	if failed.Status.FailedDigest != d2 {
		t.Errorf("failedDigest %q, want %s", failed.Status.FailedDigest, d2)
	}
}

func setVerifier(e *e2eenv.Env, name, image string) {
	e.T.Helper()
	cv := e.GetCV(name)
	cv.Spec.Strategy.Verify[0].Image = image
	_, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Update(e.Ctx, cv, metav1.UpdateOptions{})
	e2eenv.Must(e.T, err)
}

func assertSide(e *e2eenv.Env, name, image string, replicas int32) {
	e.T.Helper()
	e.Eventually(10*time.Second, fmt.Sprintf("%s runs %s ×%d", name, image, replicas), func() (bool, error) {
		d, err := e.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got, n := d.Spec.Template.Spec.Containers[0].Image, ptr.Deref(d.Spec.Replicas, 1)
		return got == image && n == replicas, fmt.Errorf("%s ×%d", got, n)
	})
}
