package rollout

import (
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Steps of a rollout before the strategy runs, kept in status.rollout.step.
// A step once recorded is never redone, so a restarted controller does not
// verify or migrate twice, even when the finished Job has been cleaned up.
const (
	StepStarted     = ""
	StepPreVerified = "PreVerified"
	StepMigrated    = "Migrated"
)

// Lifecycle is the part of every rollout that comes before the strategy:
// the container's verifications, then the migration Jobs.
type Lifecycle struct {
	Jobs *Jobs
}

// FirstStep is the step a new rollout is recorded at. A step in status
// means "everything before it is done", so a rollout with no container
// verifications starts past them, and one with no migration Jobs either
// starts past those too. Most CVs have neither: they then reach the
// workload patch after one status write instead of three, which halves
// detection latency when the API server is busy (see docs/performance.md).
func FirstStep(cv *cvv1.ContainerVersion) string {
	if len(cv.Spec.Container.Verify) > 0 {
		return StepStarted
	}
	if cv.Spec.PreRollout != nil && len(cv.Spec.PreRollout.Jobs) > 0 {
		return StepPreVerified
	}
	return StepMigrated
}

// Deadline is when an unfinished rollout times out: spec.timeoutSeconds
// for the workloads plus the timeouts of the Jobs that run first, so a slow
// migration does not eat the time the workloads are given.
func Deadline(cv *cvv1.ContainerVersion) time.Duration {
	total := Timeout(cv)
	for _, v := range cv.Spec.Container.Verify {
		total += stepTimeout(cv, v.TimeoutSeconds)
	}
	if cv.Spec.PreRollout != nil {
		for _, j := range cv.Spec.PreRollout.Jobs {
			total += stepTimeout(cv, j.TimeoutSeconds)
		}
	}
	return total
}

// Plan is Prepare as a plan, from the step recorded in
// w.CV.Status.Rollout. The step a plan reaches goes into Progress.Step (the
// controller writes it with the sync's one status write): verifications
// that all passed report StepPreVerified and the migrations are planned at
// once in the same plan, so a CV with both does not wait a sync between
// them. Succeeded (Step StepMigrated) means the strategy may run. A
// recorded step past the lifecycle (a strategy's) is reported unchanged,
// so the step shown never goes backwards.
func (l *Lifecycle) Plan(w World) Plan {
	step := recordedStep(w.CV)
	switch step {
	case StepStarted:
		steps := l.Jobs.VerifySteps(w.CV, w.Target, PhaseVerifyBefore, w.CV.Spec.Container.Verify)
		if plan := l.Jobs.PlanSteps(w, steps); plan.Progress.Phase != Succeeded {
			return plan
		}
		fallthrough
	case StepPreVerified:
		plan := l.Jobs.PlanSteps(w, l.Jobs.MigrationSteps(w.CV, w.Target))
		if plan.Progress.Phase != Succeeded {
			plan.Progress.Step = StepPreVerified
			return plan
		}
		step = StepMigrated
	}
	return Plan{Progress: Progress{Phase: Succeeded, Step: step}}
}

// Planners chooses the planning strategy a CV's spec.strategy.kind names;
// it is Factory for the observe → plan → apply controller.
type Planners map[string]Planner

// NewPlanners builds every strategy this controller version supports. The
// planners touch no client: jobs only lends them the Job step builders,
// which the Executor calls at apply time and which then read template Jobs
// through jobs.Client and pin verifier tags through jobs.Resolve.
func NewPlanners(jobs *Jobs) Planners {
	return Planners{
		cvv1.StrategySimple:           &Simple{Jobs: jobs},
		cvv1.StrategyServiceBlueGreen: &BlueGreen{Jobs: jobs},
	}
}

// For returns the planner of cv, or false when this version has none by
// that name.
func (p Planners) For(cv *cvv1.ContainerVersion) (Planner, bool) {
	planner, ok := p[StrategyKind(cv)]
	return planner, ok
}
