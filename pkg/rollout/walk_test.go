package rollout

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"cvmanager.dev/cvmanager/pkg/workload"
)

// walk plans, applies the plan's actions to w in memory, lets the cluster
// converge (every Deployment becomes Ready on its spec, every created Job
// passes) and records the plan's step in status, as the controller would,
// until the plan finishes. It returns one line per sync.
func walk(t *testing.T, w World, plan func(World) Plan) ([]string, Progress) {
	t.Helper()
	var syncs []string
	for range 20 {
		p := plan(w)
		syncs = append(syncs, fmt.Sprintf("%s %s %v", p.Progress.Phase, p.Progress.Step, outcomeOf(p).Actions))
		if p.Progress.Phase != InProgress {
			return syncs, p.Progress
		}
		for _, a := range p.Actions {
			applyInMemory(w, a)
		}
		for _, wl := range w.Workloads {
			if d, ok := wl.Object.(*appsv1.Deployment); ok {
				ready(d)
			}
		}
		if p.Progress.Step != "" {
			w.CV.Status.Rollout.Step = p.Progress.Step
		}
	}
	t.Fatalf("no end after 20 syncs: %v", syncs)
	return nil, Progress{}
}

func applyInMemory(w World, action Action) {
	switch a := action.(type) {
	case PatchImage:
		a.Workload.PodTemplate().Spec.Containers[0].Image = a.Image
	case ScaleDeployment:
		a.Deployment.Spec.Replicas = &a.Replicas
	case PointService:
		for k, v := range a.Selector {
			a.Service.Spec.Selector[k] = v
		}
	case CreateJob:
		w.Jobs[a.Name] = stepJob(w.CV, a.Step.Phase, a.Step.Name, rolloutStart, batchv1.JobComplete, "")
	}
}

// A whole blue-green rollout, one transition per sync: the live Service
// moves only in the Switched sync, and the old side keeps the previous
// version (only its replicas change).
func TestBlueGreenWalk(t *testing.T) {
	blue, green := colour("blue", oldImage, 3), colour("green", oldImage, 0)
	svc := services("blue", "blue")
	w := worldOf(blueGreenCV(StepMigrated), blue, green, svc)
	syncs, end := walk(t, w, (&BlueGreen{Jobs: &Jobs{}}).Plan)
	verifyJob := JobName("web", PhaseVerifyAfter, "1", digestB)
	want := []string{
		"InProgress SecondaryUpdated [patch Deployment/web-green container app image " + newImage +
			" point Service web-verify at color=green scale Deployment/web-green to 1]",
		"InProgress SecondaryReady [create Job " + verifyJob + "]",
		"InProgress SecondaryVerified [scale Deployment/web-green to 3]",
		"InProgress Switched [point Service web at color=green]",
		"InProgress Switched [scale Deployment/web-blue to 0]",
		"Succeeded  []",
	}
	if diff := cmp.Diff(want, syncs); diff != "" {
		t.Errorf("syncs (-want +got):\n%s", diff)
	}
	if end.Message != "Service web selects Deployment/web-green; Deployment/web-blue scaled to 0" {
		t.Errorf("final message %q", end.Message)
	}
	if image, _ := workload.ContainerImage(workload.Workload{Kind: workload.Deployment, Object: blue}, "app"); image != oldImage {
		t.Errorf("the idle side runs %s, want it kept on %s for a rollback", image, oldImage)
	}
}

// A rollback after the switch, with the old side scaled down: it is scaled
// up and the Service waits for it before switching back.
func TestBlueGreenRevertWalk(t *testing.T) {
	blue, green := colour("blue", oldImage, 0), colour("green", newImage, 3)
	w := worldOf(blueGreenCV(StepSwitched), blue, green, services("green", "green"))
	b := &BlueGreen{Jobs: &Jobs{}}
	syncs, end := walk(t, w, b.PlanRevert)
	want := []string{
		"InProgress  [scale Deployment/web-blue to 3]",
		"InProgress  [point Service web at color=blue patch Deployment/web-green container app image " + oldImage +
			" scale Deployment/web-green to 0]",
		"Succeeded  []",
	}
	if diff := cmp.Diff(want, syncs); diff != "" {
		t.Errorf("syncs (-want +got):\n%s", diff)
	}
	if end.Reason != "RolledBack" {
		t.Errorf("end %+v", end)
	}
}

// A Simple rollout with verification: patch, wait, verify, done.
func TestSimpleWalk(t *testing.T) {
	w := worldOf(rollingCV(StepMigrated, withVerify), deployment("web", oldImage, 2), deployment("api", oldImage, 1))
	syncs, end := walk(t, w, (&Simple{Jobs: &Jobs{}}).Plan)
	want := []string{
		"InProgress  [patch Deployment/api container app image " + newImage + " patch Deployment/web container app image " + newImage + "]",
		"InProgress WorkloadsReady [create Job " + JobName("web", PhaseVerifyAfter, "1", digestB) + "]",
		"Succeeded  []",
	}
	if diff := cmp.Diff(want, syncs); diff != "" {
		t.Errorf("syncs (-want +got):\n%s", diff)
	}
	if end.Message != "2 workload(s) run "+newImage+"; verified" {
		t.Errorf("final message %q", end.Message)
	}
}
