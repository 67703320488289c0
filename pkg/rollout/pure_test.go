package rollout

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// snapshot deep-copies everything a World points to, in a stable order.
func snapshot(w World) []runtime.Object {
	objs := []runtime.Object{w.CV.DeepCopy()}
	for _, wl := range w.Workloads {
		objs = append(objs, wl.Object.(runtime.Object).DeepCopyObject())
	}
	for _, name := range slices.Sorted(maps.Keys(w.Services)) {
		objs = append(objs, w.Services[name].DeepCopy())
	}
	for _, name := range slices.Sorted(maps.Keys(w.Jobs)) {
		objs = append(objs, w.Jobs[name].DeepCopy())
	}
	for _, key := range slices.Sorted(maps.Keys(w.Pods)) {
		for _, p := range w.Pods[key] {
			objs = append(objs, p.DeepCopy())
		}
	}
	return objs
}

// Plans read the World and never write to it: its objects come from
// informer caches shared with the rest of the controller.
func TestPlansDoNotMutateTheWorld(t *testing.T) {
	jobs := &Jobs{}
	planners := map[string]func(World) Plan{
		"Simple.Plan": (&Simple{Jobs: jobs}).Plan, "Simple.PlanRevert": (&Simple{Jobs: jobs}).PlanRevert,
		"BlueGreen.Plan": (&BlueGreen{Jobs: jobs}).Plan, "BlueGreen.PlanRevert": (&BlueGreen{Jobs: jobs}).PlanRevert,
		"Lifecycle.Plan": (&Lifecycle{Jobs: jobs}).Plan,
	}
	simple := rollingCV(StepStarted, withVerify, withPreVerify, withMigration("Rollback"))
	blueGreen := blueGreenCV(StepSecondaryReady)
	worlds := []World{
		worldOf(simple, deployment("web", oldImage, 2), available(deployment("api", newImage, 2), 1),
			podsOf{"Deployment/api", []*corev1.Pod{stuckPod("api-1", newImage, "CrashLoopBackOff")}}),
		worldOf(simple, deployment("web", newImage, 2),
			stepJob(simple, PhaseVerifyBefore, "1", rolloutStart.Add(-1), batchv1.JobFailed, "BackoffLimitExceeded")),
		worldOf(blueGreen, colour("blue", oldImage, 3), colour("green", oldImage, 0), services("blue", "blue")),
		worldOf(blueGreen, colour("blue", oldImage, 0), colour("green", newImage, 3), services("green", "blue")),
		worldOf(blueGreenCV(StepMigrated, func(s *cvv1.ContainerVersionSpec) { s.Strategy.BlueGreen.ScaleDown = true }),
			colour("blue", newImage, 3), colour("green", oldImage, 3), services("blue", "blue")),
	}
	for i, w := range worlds {
		for name, plan := range planners {
			before := snapshot(w)
			plan(w)
			if after := snapshot(w); !reflect.DeepEqual(before, after) {
				t.Errorf("world %d: %s changed the World", i, name)
			}
		}
	}
}
