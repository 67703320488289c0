package rollout

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/workload"
)

// Plan implements Planner: patch every selected workload that does not
// hold the target yet, judge the others' health, and once all are done run
// strategy.verify. A workload patched in this plan is not judged: its
// status in w is from before the patch, so it would look healthy on the old
// version.
func (s *Simple) Plan(w World) Plan {
	if p, ok := checkSelected(w); !ok {
		return Plan{Progress: p}
	}
	plan := rollWorkloads(w)
	if plan.Progress.Phase != Succeeded || len(w.CV.Spec.Strategy.Verify) == 0 {
		return plan
	}
	return s.planVerify(w, plan.Progress)
}

// checkSelected refuses, changing nothing, a rollout the cluster is not
// set up for: the same checks as Advance, over the World's workloads.
func checkSelected(w World) (Progress, bool) {
	cv := w.CV
	if _, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector); err != nil {
		return misconfigured("InvalidSelector", "spec.selector: %v", err), false
	}
	if len(w.Workloads) == 0 {
		return misconfigured("NoMatchingWorkloads",
			"no Deployment, StatefulSet, DaemonSet or CronJob in namespace %s matches selector %s",
			cv.Namespace, metav1.FormatLabelSelector(cv.Spec.Selector)), false
	}
	if p, ok := checkContainers(w.Workloads, cv.Spec.Container.Name); !ok {
		return p, false
	}
	return checkRepos(w.Workloads, cv.Spec.Container.Name, cv.Spec.ImageRepo)
}

// rollWorkloads patches or judges each workload. A failure found in one
// already running the target fails the rollout with no action at all:
// patching the rest to a version known to fail would only widen what the
// rollback must undo.
func rollWorkloads(w World) Plan {
	container, image := w.CV.Spec.Container.Name, w.Target.Image
	keys := workloadKeys(w.Workloads)
	var actions []Action
	var waiting []string
	for _, wl := range w.Workloads {
		if current, _ := workload.ContainerImage(wl, container); current != image {
			actions = append(actions, PatchImage{Workload: wl, Container: container, Image: image})
			waiting = append(waiting, wl.Key()+" to be updated")
			continue
		}
		h := workload.Evaluate(wl, w.Pods[wl.Key()], container, image)
		switch {
		case h.Failed:
			return Plan{Progress: Progress{Phase: Failed, Reason: h.Reason, Message: h.Message, Workloads: keys}}
		case !h.Done:
			waiting = append(waiting, fmt.Sprintf("%s %d/%d ready", wl.Key(), h.Ready, h.Desired))
		}
	}
	if len(waiting) > 0 {
		return Plan{Actions: actions, Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads",
			Message: "waiting for " + strings.Join(waiting, ", "), Workloads: keys}}
	}
	return Plan{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: keys,
		Message: fmt.Sprintf("%d workload(s) run %s", len(w.Workloads), image)}}
}

// planVerify runs strategy.verify once every workload runs the new version
// and is healthy; a failure fails the rollout (and rolls back when
// enabled).
func (s *Simple) planVerify(w World, healthy Progress) Plan {
	steps := s.Jobs.VerifySteps(w.CV, w.Target, PhaseVerifyAfter, w.CV.Spec.Strategy.Verify)
	plan := s.Jobs.PlanSteps(w, steps)
	plan.Progress.Workloads = healthy.Workloads
	switch plan.Progress.Phase {
	case InProgress:
		plan.Progress.Step = StepWorkloadsReady
	case Succeeded:
		plan.Progress.Reason, plan.Progress.Message = healthy.Reason, healthy.Message+"; verified"
	}
	return plan
}

// PlanRevert implements Planner: every selected workload that has the
// container is patched back to w.Previous. Health is not awaited, as in
// Revert: the version restored already ran successfully. The revert is
// Succeeded once a World shows nothing left to patch.
func (s *Simple) PlanRevert(w World) Plan {
	if w.Previous == nil {
		return Plan{Progress: noPrevious()}
	}
	container, image := w.CV.Spec.Container.Name, w.Previous.Image
	var actions []Action
	var keys []string
	for _, wl := range w.Workloads {
		current, found := workload.ContainerImage(wl, container)
		if !found {
			continue
		}
		keys = append(keys, wl.Key())
		if current != image {
			actions = append(actions, PatchImage{Workload: wl, Container: container, Image: image})
		}
	}
	if len(actions) > 0 {
		return Plan{Actions: actions, Progress: Progress{Phase: InProgress, Reason: "RollingBack",
			Message: fmt.Sprintf("restoring %s in %d workload(s)", image, len(actions)), Workloads: keys}}
	}
	return Plan{Progress: Progress{Phase: Succeeded, Reason: "RolledBack",
		Message: fmt.Sprintf("%d workload(s) run %s", len(keys), image), Workloads: keys}}
}

// noPrevious is a revert with nothing to go back to; the controller only
// plans a revert when status.successVersion is set, so this is a bug
// guard, not a path users meet.
func noPrevious() Progress {
	return Progress{Phase: Failed, Reason: "NoPreviousVersion", Message: "no previous version to roll back to"}
}

func workloadKeys(workloads []workload.Workload) []string {
	keys := make([]string, 0, len(workloads))
	for _, w := range workloads {
		keys = append(keys, w.Key())
	}
	return keys
}
