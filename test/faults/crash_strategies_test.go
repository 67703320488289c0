package faults

import (
	"fmt"
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
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// strategyKillPoint is a named step of a blue-green or migration rollout:
// a freeze (optional) holding the rollout there, and a predicate that
// recognises it.
type strategyKillPoint struct {
	name   string
	freeze func(f *fixture) *freezeSpec
	// reached sees the step in the CV's status and the cluster.
	reached func(f *fixture, cv *cvv1.ContainerVersion) bool
}

// blueGreenKillPoints are the steps of a ServiceBlueGreen rollout from
// blue (live) to green.
var blueGreenKillPoints = []strategyKillPoint{{
	name: "secondary patched, not yet Ready",
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		green := f.deployment(f.app + "-green")
		return cv.Status.Rollout != nil && f.liveColor() == "blue" &&
			green.Spec.Template.Spec.Containers[0].Image == f.pinned &&
			(ptr.Deref(green.Spec.Replicas, 0) == 0 || green.Status.AvailableReplicas < ptr.Deref(green.Spec.Replicas, 0))
	},
}, {
	name: "secondary verified and scaled up, Service not yet switched",
	freeze: func(f *fixture) *freezeSpec {
		return &freezeSpec{group: "", resources: []string{"services"}, allow: fmt.Sprintf("object.metadata.name != '%s'", f.app)}
	},
	// Recognised from the cluster, not status.rollout.step: the step
	// recorded can fall back to SecondaryUpdated while the scaled-up
	// secondary's new pods become Ready (see docs/reliability.md).
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		jobs := f.jobs(rollout.PhaseVerifyAfter)
		return cv.Status.Rollout != nil && f.liveColor() == "blue" && len(jobs) == 1 && jobs[0].Status.Succeeded == 1 &&
			ptr.Deref(f.deployment(f.app+"-green").Spec.Replicas, 0) == 2
	},
}, {
	name: "Service switched, old side not yet scaled down",
	freeze: func(f *fixture) *freezeSpec {
		return &freezeSpec{group: "apps", resources: []string{"deployments"},
			allow: fmt.Sprintf("!(object.metadata.name == '%s-blue' && object.spec.replicas == 0)", f.app)}
	},
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && f.liveColor() == "green"
	},
}}

// migrationKillPoints are the steps of a Simple rollout with a migration
// Job ahead of the workload change.
var migrationKillPoints = []strategyKillPoint{{
	name:   "migration Job created, workload not yet patched",
	freeze: func(*fixture) *freezeSpec { return deploymentsFrozen },
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && len(f.jobs(rollout.PhaseMigrate)) == 1 && f.patches() == 0
	},
}, {
	name: "migration done, workload patched, rollout not finished",
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && f.patches() == 1
	},
}}

// TestKillDuringBlueGreenResumesAndTrafficOnlyMovesToReadyPods kills the
// controller with SIGKILL at each step of a blue-green rollout. A new
// process finishes it once; the live Service is watched throughout and
// must never select a pod that is not Ready; verification runs once.
func TestKillDuringBlueGreenResumesAndTrafficOnlyMovesToReadyPods(t *testing.T) {
	for i, kp := range blueGreenKillPoints {
		t.Run(kp.name, func(t *testing.T) {
			f := newBlueGreenFixture(t, fmt.Sprintf("bg%d", i))
			switches := f.watchLiveService()
			f.killAndResume(kp)
			if got := f.liveColor(); got != "green" {
				t.Errorf("live Service selects %s, want green", got)
			}
			green, blue := f.deployment(f.app+"-green"), f.deployment(f.app+"-blue")
			if img := green.Spec.Template.Spec.Containers[0].Image; img != f.pinned || ptr.Deref(green.Spec.Replicas, 0) != 2 {
				t.Errorf("green runs %s ×%d, want %s ×2", img, ptr.Deref(green.Spec.Replicas, 0), f.pinned)
			}
			if ptr.Deref(blue.Spec.Replicas, 0) != 0 {
				t.Errorf("blue still has %d replicas", ptr.Deref(blue.Spec.Replicas, 0))
			}
			f.assertJobsOnce(rollout.PhaseVerifyAfter)
			for _, bad := range switches.violations() {
				t.Errorf("live Service pointed at un-Ready pods: %s", bad)
			}
			if switches.count() != 1 {
				t.Errorf("live Service switched %d times, want once", switches.count())
			}
		})
	}
}

// TestKillDuringMigrationNeverRunsItTwice kills the controller while the
// migration Job exists and after it, and asserts the migration ran exactly
// once (one Job, one successful pod) and the rollout finished once.
func TestKillDuringMigrationNeverRunsItTwice(t *testing.T) {
	for i, kp := range migrationKillPoints {
		t.Run(kp.name, func(t *testing.T) {
			f := newFixture(t, fmt.Sprintf("migr%d", i), slow)
			f.args = []string{"--allow-inline-job-templates"} // off by default (docs/security.md)
			f.createCV(withMigration)
			f.killAndResume(kp)
			if got := f.DeploymentImage(f.app); got != f.pinned {
				t.Errorf("workload runs %s, want %s", got, f.pinned)
			}
			f.assertJobsOnce(rollout.PhaseMigrate)
			f.assertOnce(1, "Success")
		})
	}
}

// withMigration adds one migration Job (the new image, container "app")
// that must succeed before any workload changes.
func withMigration(s *cvv1.ContainerVersionSpec) {
	s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{
		Name: "schema", OnFailure: "Abort",
		Template: &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "app", Image: "replaced", Args: []string{"migrate"}}},
			}},
		}},
	}}}
}

// killAndResume runs the first controller until kp is reached, kills it
// with SIGKILL, lifts the freeze, and lets a second process finish the
// rollout of v1.
func (f *fixture) killAndResume(kp strategyKillPoint) {
	f.T.Helper()
	first := f.startController("first")
	unfreeze := func() {}
	if kp.freeze != nil {
		fs := kp.freeze(f)
		unfreeze = f.freeze(f.app, fs.group, fs.resources, fs.allow)
	}
	digest := f.push("v1")
	f.pinned = gen.Pinned(f.repo, "v1", digest)
	f.Eventually(60*time.Second, "kill point: "+kp.name, func() (bool, error) {
		cv := f.cv()
		return kp.reached(f, cv), fmt.Errorf("status %q rollout %+v", cv.Status.CurrStatus, cv.Status.Rollout)
	})
	first.kill9()
	unfreeze()
	if cv := f.cv(); !kp.reached(f, cv) {
		f.T.Fatalf("state moved on after the kill; the test no longer covers %q: rollout %+v, live Service %s",
			kp.name, cv.Status.Rollout, f.liveColorIfAny())
	}
	f.startController("restarted")
	f.WaitStatus(f.app, cvv1.StatusSuccess, digest, 90*time.Second)
	if records := f.History(f.app); len(records) != 1 || records[0].Outcome != "Success" {
		f.T.Errorf("history %+v, want one Success record", records)
	}
	if got := f.EventReasons(f.app)["RolloutStarted"]; got > 1 {
		f.T.Errorf("%d RolloutStarted events, want at most 1 (lost with the killed process is fine)", got)
	}
}

// newBlueGreenFixture: <app>-blue live with 2 replicas of the old image,
// <app>-green at 0, the live Service <app> and <app>-verify, and the CV
// with one verification Job.
func newBlueGreenFixture(t *testing.T, app string) *fixture {
	f := &fixture{Env: e2eenv.New(t), reg: e2eenv.NewRegistry(t), app: app}
	f.repo = f.reg.Repo("team/" + app)
	for color, replicas := range map[string]int32{"blue": 2, "green": 0} {
		d := gen.ColorDeployment(f.NS, app, color, f.repo+":old", replicas)
		d.Spec.MinReadySeconds = 3 // a window between patch and Ready
		_, err := f.Kube.AppsV1().Deployments(f.NS).Create(f.Ctx, d, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	for _, svc := range gen.BlueGreenServices(f.NS, app) {
		_, err := f.Kube.CoreV1().Services(f.NS).Create(f.Ctx, svc, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	f.Eventually(60*time.Second, "blue Ready", func() (bool, error) {
		d := f.deployment(app + "-blue")
		return d.Status.ReadyReplicas == 2, nil
	})
	f.CreateCV(gen.NewCV(f.NS, app, f.repo, gen.BlueGreen(app, "verifier:ok"),
		func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }))
	t.Cleanup(f.dumpOnFailure)
	return f
}

func (f *fixture) deployment(name string) *appsv1.Deployment {
	f.T.Helper()
	d, err := f.Kube.AppsV1().Deployments(f.NS).Get(f.Ctx, name, metav1.GetOptions{})
	e2eenv.Must(f.T, err)
	return d
}

// liveColor is the color the live Service selects.
func (f *fixture) liveColor() string {
	svc, err := f.Kube.CoreV1().Services(f.NS).Get(f.Ctx, f.app, metav1.GetOptions{})
	e2eenv.Must(f.T, err)
	return svc.Spec.Selector["color"]
}

func (f *fixture) liveColorIfAny() string {
	svc, err := f.Kube.CoreV1().Services(f.NS).Get(f.Ctx, f.app, metav1.GetOptions{})
	if err != nil {
		return "none"
	}
	return svc.Spec.Selector["color"]
}

// jobs lists the CV's Jobs of one phase (migrate, postverify).
func (f *fixture) jobs(phase string) []batchv1.Job {
	list, err := f.Kube.BatchV1().Jobs(f.NS).List(f.Ctx, metav1.ListOptions{
		LabelSelector: labels.Set{rollout.LabelCV: f.app, rollout.LabelPhase: phase}.String()})
	e2eenv.Must(f.T, err)
	return list.Items
}

// assertJobsOnce: exactly one Job of the phase exists, it succeeded, and
// it ran one pod (a Job re-created or a pod retried would run it twice).
func (f *fixture) assertJobsOnce(phase string) {
	f.T.Helper()
	jobs := f.jobs(phase)
	if len(jobs) != 1 {
		f.T.Fatalf("%d %s Jobs, want exactly 1", len(jobs), phase)
	}
	j := jobs[0]
	if j.Status.Succeeded != 1 || j.Status.Failed != 0 {
		f.T.Errorf("%s Job %s: %d succeeded, %d failed pods, want one success", phase, j.Name, j.Status.Succeeded, j.Status.Failed)
	}
	pods, err := f.Kube.CoreV1().Pods(f.NS).List(f.Ctx, metav1.ListOptions{LabelSelector: "job-name=" + j.Name})
	e2eenv.Must(f.T, err)
	if len(pods.Items) > 1 {
		f.T.Errorf("%s Job %s ran %d pods, want 1", phase, j.Name, len(pods.Items))
	}
}

// serviceWatch checks, at every change of the live Service's selector,
// that every pod it now selects is Ready.
type serviceWatch struct {
	mu       sync.Mutex
	switches int
	bad      []string
}

func (s *serviceWatch) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.switches
}

func (s *serviceWatch) violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

func (f *fixture) watchLiveService() *serviceWatch {
	w, err := f.Kube.CoreV1().Services(f.NS).Watch(f.Ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + f.app})
	e2eenv.Must(f.T, err)
	f.T.Cleanup(w.Stop)
	sw := &serviceWatch{}
	go func() {
		last := "blue"
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type != watch.Modified || svc.Spec.Selector["color"] == last {
				continue
			}
			last = svc.Spec.Selector["color"]
			problem := f.unreadySelected(svc.Spec.Selector)
			sw.mu.Lock()
			sw.switches++
			if problem != "" {
				sw.bad = append(sw.bad, problem)
			}
			sw.mu.Unlock()
		}
	}()
	return sw
}

// unreadySelected describes the selected pods that are not Ready, or
// returns "" when there are some and all are Ready.
func (f *fixture) unreadySelected(selector map[string]string) string {
	pods, err := f.Kube.CoreV1().Pods(f.NS).List(f.Ctx, metav1.ListOptions{LabelSelector: labels.Set(selector).String()})
	if err != nil {
		return err.Error()
	}
	ready := 0
	var bad []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if podReady(&p) {
			ready++
		} else {
			bad = append(bad, p.Name)
		}
	}
	if ready == 0 || len(bad) > 0 {
		return fmt.Sprintf("selector %v: %d Ready, not Ready: %v", selector, ready, bad)
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
