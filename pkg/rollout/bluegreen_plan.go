package rollout

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"cvmanager.dev/cvmanager/pkg/workload"
)

// Plan implements Planner with the steps of Advance, one transition per
// plan: the first step not yet met in w yields its actions and an
// InProgress naming the step reached. Until the switch, no action touches
// the live Service.
func (b *BlueGreen) Plan(w World) Plan {
	p, bad := loadPair(w)
	if bad.Phase == Failed {
		return Plan{Progress: bad}
	}
	if image, _ := workload.ContainerImage(p.primary, w.CV.Spec.Container.Name); image == w.Target.Image {
		return p.planFinish()
	}
	steps := []func(World, pair) Plan{planUpdateSecondary, planAwaitSecondary, b.planVerify, planScaleUp, planSwitch}
	var plan Plan
	for _, step := range steps {
		if plan = step(w, p); plan.Progress.Phase != Succeeded {
			break
		}
	}
	plan.Progress.Workloads = p.keys()
	plan.Progress.Step = notBefore(recordedStep(w.CV), plan.Progress.Step)
	return plan
}

// planUpdateSecondary pins the target in the secondary, points the
// verification Service at it and gives it a replica when it has none.
func planUpdateSecondary(w World, p pair) Plan {
	container := w.CV.Spec.Container.Name
	var actions []Action
	if image, _ := workload.ContainerImage(p.secondary, container); image != w.Target.Image {
		actions = append(actions, PatchImage{Workload: p.secondary, Container: container, Image: w.Target.Image})
	}
	if p.verification != nil {
		if selector, changed := selectorFor(p.verification, p.secondaryDep, p.spec.LabelNames); changed {
			actions = append(actions, PointService{Service: p.verification, Selector: selector})
		}
	}
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) == 0 {
		actions = append(actions, ScaleDeployment{Deployment: p.secondaryDep, Replicas: 1})
	}
	if len(actions) == 0 {
		return Plan{Progress: done(StepSecondaryUpdated)}
	}
	return Plan{Actions: actions, Progress: Progress{Phase: InProgress, Step: StepSecondaryUpdated, Reason: "UpdatingSecondary",
		Message: fmt.Sprintf("updating %s to %s", p.secondary.Key(), w.Target.Image)}}
}

// planAwaitSecondary waits until every pod of the secondary runs the
// target and is Ready.
func planAwaitSecondary(w World, p pair) Plan {
	h := workload.Evaluate(p.secondary, w.Pods[p.secondary.Key()], w.CV.Spec.Container.Name, w.Target.Image)
	switch {
	case h.Failed:
		return Plan{Progress: Progress{Phase: Failed, Reason: h.Reason,
			Message: fmt.Sprintf("%s (live Service %s untouched)", h.Message, p.live.Name)}}
	case !h.Done:
		return Plan{Progress: Progress{Phase: InProgress, Step: StepSecondaryUpdated, Reason: "WaitingForSecondary",
			Message: fmt.Sprintf("waiting for %s: %d/%d ready", p.secondary.Key(), h.Ready, h.Desired)}}
	}
	return Plan{Progress: done(StepSecondaryReady)}
}

// planVerify runs strategy.verify against the secondary while it carries
// no live traffic; the verifier is told the verification Service's name.
func (b *BlueGreen) planVerify(w World, p pair) Plan {
	var env []corev1.EnvVar
	if p.verification != nil {
		env = append(env, corev1.EnvVar{Name: "CVMANAGER_VERIFICATION_SERVICE", Value: p.verification.Name})
	}
	steps := b.Jobs.VerifySteps(w.CV, w.Target, PhaseVerifyAfter, w.CV.Spec.Strategy.Verify, env...)
	plan := b.Jobs.PlanSteps(w, steps)
	switch plan.Progress.Phase {
	case InProgress:
		plan.Progress.Step = StepSecondaryReady
	case Failed:
		plan.Progress.Message += fmt.Sprintf(" (live Service %s untouched)", p.live.Name)
	}
	return plan
}

// planScaleUp gives the secondary as many replicas as the primary and
// waits for them, so the switch does not move full traffic onto one pod.
func planScaleUp(w World, p pair) Plan {
	want := ptr.Deref(p.primaryDep.Spec.Replicas, 1)
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) < want {
		return Plan{Actions: []Action{ScaleDeployment{Deployment: p.secondaryDep, Replicas: want}},
			Progress: Progress{Phase: InProgress, Step: StepVerified, Reason: "ScalingSecondary",
				Message: fmt.Sprintf("scaling %s to %d replicas", p.secondary.Key(), want)}}
	}
	plan := planAwaitSecondary(w, p)
	switch plan.Progress.Phase {
	case InProgress:
		plan.Progress.Step = StepVerified
	case Succeeded:
		plan.Progress.Step = StepScaledUp
	}
	return plan
}

// planSwitch points the live Service at the secondary: the one step that
// moves live traffic, reached only when everything before it holds.
func planSwitch(_ World, p pair) Plan {
	selector, _ := selectorFor(p.live, p.secondaryDep, p.spec.LabelNames)
	return Plan{Actions: []Action{PointService{Service: p.live, Selector: selector}},
		Progress: Progress{Phase: InProgress, Step: StepSwitched, Reason: StepSwitched,
			Message: fmt.Sprintf("Service %s switched to %s", p.live.Name, p.secondary.Key())}}
}

// planFinish runs once the live Service selects the Deployment with the
// target: with scaleDown the old one goes to 0 first, and the rollout
// succeeds when a World shows it there. The old side keeps its image: it
// is what a later rollback switches back to.
func (p pair) planFinish() Plan {
	msg := fmt.Sprintf("Service %s selects %s", p.live.Name, p.primary.Key())
	if p.spec.ScaleDown {
		if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) > 0 {
			return Plan{Actions: []Action{ScaleDeployment{Deployment: p.secondaryDep, Replicas: 0}},
				Progress: Progress{Phase: InProgress, Step: StepSwitched, Reason: "ScalingDown", Workloads: p.keys(),
					Message: fmt.Sprintf("%s; scaling %s to 0", msg, p.secondary.Key())}}
		}
		msg += fmt.Sprintf("; %s scaled to 0", p.secondary.Key())
	}
	return Plan{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Message: msg, Workloads: p.keys()}}
}

// loadPair is load over the World: the Services and Deployments come from
// w, the checks and their reasons are the same.
func loadPair(w World) (pair, Progress) {
	cv := w.CV
	spec := cv.Spec.Strategy.BlueGreen
	if spec == nil {
		return pair{}, misconfigured("BlueGreenSpecMissing", "strategy ServiceBlueGreen needs strategy.blueGreen")
	}
	p := pair{spec: spec}
	if p.live = w.Services[spec.ServiceName]; p.live == nil {
		return p, serviceNotFound("ServiceNotFound", spec.ServiceName, cv.Namespace)
	}
	if name := spec.VerificationServiceName; name != "" {
		if p.verification = w.Services[name]; p.verification == nil {
			return p, serviceNotFound("VerificationServiceNotFound", name, cv.Namespace)
		}
	}
	if _, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector); err != nil {
		return p, misconfigured("InvalidSelector", "spec.selector: %v", err)
	}
	deployments, bad := twoDeploymentsOf(cv, w.Workloads)
	if bad.Phase == Failed {
		return p, bad
	}
	p, bad, _ = p.assign(deployments, cv.Spec.Container.Name)
	return p, bad
}

func serviceNotFound(reason, name, namespace string) Progress {
	return misconfigured(reason, "Service %s not found in namespace %s; nothing was changed", name, namespace)
}

// PlanRevert implements Planner with the steps of Revert. When the live
// Service selects the side that does not run w.Previous, it is switched
// back, but only onto Ready pods: the old side is scaled up first when it
// had been scaled down, and the plan waits (InProgress) until it is Ready.
// Then the other side gets the previous image back too (and 0 replicas
// with scaleDown). Succeeded once a World shows nothing left to do.
func (b *BlueGreen) PlanRevert(w World) Plan {
	if w.Previous == nil {
		return Plan{Progress: noPrevious()}
	}
	p, bad := loadPair(w)
	if bad.Phase == Failed {
		bad.Message = "cannot roll back: " + bad.Message
		return Plan{Progress: bad}
	}
	container, image := w.CV.Spec.Container.Name, w.Previous.Image
	var actions []Action
	if current, _ := workload.ContainerImage(p.primary, container); current != image {
		plan, switched := planSwitchBack(p, container, image)
		if !switched {
			plan.Progress.Workloads = p.keys()
			return plan
		}
		actions = plan.Actions
		p.primary, p.secondary, p.primaryDep, p.secondaryDep = p.secondary, p.primary, p.secondaryDep, p.primaryDep
	}
	if current, _ := workload.ContainerImage(p.secondary, container); current != image {
		actions = append(actions, PatchImage{Workload: p.secondary, Container: container, Image: image})
	}
	if p.spec.ScaleDown && ptr.Deref(p.secondaryDep.Spec.Replicas, 1) > 0 {
		actions = append(actions, ScaleDeployment{Deployment: p.secondaryDep, Replicas: 0})
	}
	msg := fmt.Sprintf("Service %s selects %s, which runs %s", p.live.Name, p.primary.Key(), image)
	if len(actions) > 0 {
		return Plan{Actions: actions, Progress: Progress{Phase: InProgress, Reason: "RollingBack", Message: msg, Workloads: p.keys()}}
	}
	return Plan{Progress: Progress{Phase: Succeeded, Reason: "RolledBack", Message: msg, Workloads: p.keys()}}
}

// planSwitchBack points the live Service at the secondary, which must run
// image, once the secondary has the primary's replicas and they are
// Ready. It reports true when the switch is among the plan's actions.
func planSwitchBack(p pair, container, image string) (Plan, bool) {
	if current, _ := workload.ContainerImage(p.secondary, container); current != image {
		return Plan{Progress: Progress{Phase: Failed, Reason: "NeitherRunsPrevious",
			Message: fmt.Sprintf("neither %s nor %s runs %s: switch %s by hand", p.primary.Key(), p.secondary.Key(), image, p.live.Name)}}, false
	}
	want := ptr.Deref(p.primaryDep.Spec.Replicas, 1)
	var actions []Action
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) < want {
		actions = append(actions, ScaleDeployment{Deployment: p.secondaryDep, Replicas: want})
	}
	if len(actions) > 0 || p.secondaryDep.Status.ReadyReplicas < max(want, 1) {
		return Plan{Actions: actions, Progress: Progress{Phase: InProgress, Reason: "WaitingForPrevious",
			Message: fmt.Sprintf("waiting for %s to be Ready before switching %s back", p.secondary.Key(), p.live.Name)}}, false
	}
	selector, _ := selectorFor(p.live, p.secondaryDep, p.spec.LabelNames)
	return Plan{Actions: []Action{PointService{Service: p.live, Selector: selector}}}, true
}
