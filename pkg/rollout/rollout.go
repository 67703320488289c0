// Package rollout moves workloads to a new image. Each strategy is a
// Planner: a pure function from a World (what the controller observed) to
// the next transition, a Progress and the Actions that make it, which the
// controller's apply phase runs through an Executor. Planned again after
// every workload change and after a restart, each plan asks only for what
// is still missing, so a rollout resumes instead of starting over.
//
// The package knows nothing of workqueues or registries: it gets a target
// image and reports progress.
//
// The same strategies also exist as pure plans (Planner, Lifecycle.Plan,
// Jobs.PlanSteps): a function of a World snapshot returning a Plan, whose
// actions an Executor applies. They make the same decisions, one
// transition per sync, without touching a client, so every transition is
// a table test.
package rollout

import (
	"fmt"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Phase is where a rollout stands after a call to Advance.
type Phase string

// Phases of a rollout.
const (
	InProgress Phase = "InProgress"
	Succeeded  Phase = "Succeeded"
	Failed     Phase = "Failed"
)

// Target is the image a rollout moves workloads to, always pinned by digest.
type Target struct {
	Version string
	Digest  string
	// Image is the full reference written into pod templates: repo:version@sha256:….
	Image string
}

// Progress reports the state of a rollout.
type Progress struct {
	Phase Phase
	// Reason is a CamelCase machine-readable cause, used for conditions.
	Reason string
	// Message is for people: it names the workload and what is wrong.
	Message string
	// Step is the last step completed, shown in status.rollout.step so a
	// person (and a restarted controller) sees how far a rollout got.
	Step string
	// Workloads are the keys ("Deployment/web") the rollout covers.
	Workloads []string
	// Misconfigured marks failures caused by the cluster's configuration
	// (no matching workload, container absent): the version itself is not to
	// blame, so it is not marked as failed and is tried again on a later poll.
	Misconfigured bool
	// Revert asks for a rollback whatever spec.rollback says: a failed
	// migration whose onFailure is Rollback.
	Revert bool
}

// StrategyKind normalises spec.strategy.kind: the empty kind is Simple.
func StrategyKind(cv *cvv1.ContainerVersion) string {
	if cv.Spec.Strategy.Kind == "" {
		return cvv1.StrategySimple
	}
	return cv.Spec.Strategy.Kind
}

func misconfigured(reason, format string, args ...any) Progress {
	return Progress{Phase: Failed, Reason: reason, Message: fmt.Sprintf(format, args...), Misconfigured: true}
}

// Timeout bounds every wait of a rollout: spec.timeoutSeconds, 5 minutes
// when unset.
func Timeout(cv *cvv1.ContainerVersion) time.Duration {
	if cv.Spec.TimeoutSeconds <= 0 {
		return 5 * time.Minute
	}
	return time.Duration(cv.Spec.TimeoutSeconds) * time.Second
}

// stepTimeout is a job's own timeout, or the CV's.
func stepTimeout(cv *cvv1.ContainerVersion, seconds int32) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return Timeout(cv)
}
