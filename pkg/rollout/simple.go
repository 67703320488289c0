package rollout

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// StepWorkloadsReady: every workload runs the new version and is Ready.
const StepWorkloadsReady = "WorkloadsReady"

// Simple updates the container image of every selected workload in place and
// lets each workload's own controller roll its pods.
type Simple struct {
	Client  kubernetes.Interface
	Listers workload.Listers
	Jobs    *Jobs
}

// Name implements Strategy.
func (s *Simple) Name() string { return cvv1.StrategySimple }

// Advance patches every workload that does not yet hold the target image,
// then judges health from the workloads' status and pods.
func (s *Simple) Advance(ctx context.Context, cv *cvv1.ContainerVersion, target Target) (Progress, error) {
	workloads, p, ok := s.selectWorkloads(cv)
	if !ok {
		return p, nil
	}
	if p, ok := checkContainers(workloads, cv.Spec.Container.Name); !ok {
		return p, nil
	}
	if p, ok := checkRepos(workloads, cv.Spec.Container.Name, cv.Spec.ImageRepo); !ok {
		return p, nil
	}
	for _, w := range workloads {
		if _, err := workload.PatchImage(ctx, s.Client, w, cv.Spec.Container.Name, target.Image); err != nil {
			return Progress{}, fmt.Errorf("updating %s: %w", w.Key(), err)
		}
	}
	p, err := s.health(ctx, workloads, cv.Spec.Container.Name, target.Image)
	if err != nil || p.Phase != Succeeded || len(cv.Spec.Strategy.Verify) == 0 {
		return p, err
	}
	return s.verify(ctx, cv, target, p)
}

// verify runs strategy.verify once every workload runs the new version; a
// failure fails the rollout (and rolls back when enabled).
func (s *Simple) verify(ctx context.Context, cv *cvv1.ContainerVersion, target Target, healthy Progress) (Progress, error) {
	steps := s.Jobs.VerifySteps(cv, target, PhaseVerifyAfter, cv.Spec.Strategy.Verify)
	p, err := s.Jobs.RunAll(ctx, cv, target, steps)
	p.Workloads = healthy.Workloads
	if p.Phase == InProgress {
		p.Step = StepWorkloadsReady
	}
	if p.Phase == Succeeded {
		p.Reason, p.Message = healthy.Reason, healthy.Message+"; verified"
	}
	return p, err
}

// Revert patches every selected workload back to previous.Image. Health is
// not awaited: the version being restored already ran successfully.
func (s *Simple) Revert(ctx context.Context, cv *cvv1.ContainerVersion, previous Target) error {
	workloads, err := s.Listers.Select(cv.Namespace, selectorOf(cv))
	if err != nil {
		return err
	}
	var errs []string
	for _, w := range workloads {
		if _, found := workload.ContainerImage(w, cv.Spec.Container.Name); !found {
			continue
		}
		if _, err := workload.PatchImage(ctx, s.Client, w, cv.Spec.Container.Name, previous.Image); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", w.Key(), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("rollback incomplete: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (s *Simple) selectWorkloads(cv *cvv1.ContainerVersion) ([]workload.Workload, Progress, bool) {
	workloads, err := s.Listers.Select(cv.Namespace, selectorOf(cv))
	if err != nil {
		return nil, misconfigured("InvalidSelector", "spec.selector: %v", err), false
	}
	if len(workloads) == 0 {
		return nil, misconfigured("NoMatchingWorkloads",
			"no Deployment, StatefulSet, DaemonSet or CronJob in namespace %s matches selector %s",
			cv.Namespace, metav1.FormatLabelSelector(cv.Spec.Selector)), false
	}
	return workloads, Progress{}, true
}

// checkContainers refuses the whole rollout when any selected workload lacks
// the container: patching some workloads and not others would leave a
// half-updated application.
func checkContainers(workloads []workload.Workload, container string) (Progress, bool) {
	var missing []string
	for _, w := range workloads {
		if _, found := workload.ContainerImage(w, container); !found {
			missing = append(missing, w.Key())
		}
	}
	if len(missing) > 0 {
		return misconfigured("ContainerNotFound", "container %q not found in %s; nothing was changed",
			container, strings.Join(missing, ", ")), false
	}
	return Progress{}, true
}

func (s *Simple) health(ctx context.Context, workloads []workload.Workload, container, image string) (Progress, error) {
	p := Progress{Phase: Succeeded, Reason: "RolloutComplete"}
	var waiting []string
	for _, w := range workloads {
		p.Workloads = append(p.Workloads, w.Key())
		h, err := s.Listers.Health(ctx, w, container, image)
		if err != nil {
			return Progress{}, err
		}
		switch {
		case h.Failed:
			return Progress{Phase: Failed, Reason: h.Reason, Message: h.Message, Workloads: p.Workloads}, nil
		case !h.Done:
			waiting = append(waiting, fmt.Sprintf("%s %d/%d ready", w.Key(), h.Ready, h.Desired))
		}
	}
	if len(waiting) > 0 {
		p.Phase, p.Reason = InProgress, "WaitingForWorkloads"
		p.Message = "waiting for " + strings.Join(waiting, ", ")
	} else {
		p.Message = fmt.Sprintf("%d workload(s) run %s", len(workloads), image)
	}
	return p, nil
}
