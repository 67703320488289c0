package rollout

import (
	"strings"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// StepWorkloadsReady: every workload runs the new version and is Ready.
const StepWorkloadsReady = "WorkloadsReady"

// Simple updates the container image of every selected workload in place and
// lets each workload's own controller roll its pods.
type Simple struct {
	Jobs *Jobs
}

// Name implements Strategy.
func (s *Simple) Name() string { return cvv1.StrategySimple }

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
