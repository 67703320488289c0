package controller

import (
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// firstStep is the step a new rollout is recorded at. A step in status
// means "everything before it is done", so a rollout with no container
// verifications starts past them, and one with no migration Jobs either
// starts past those too. Most CVs have neither: they then reach the
// workload patch after one status write instead of three, which halves
// detection latency when the API server is busy (see docs/performance.md).
func firstStep(cv *cvv1.ContainerVersion) string {
	if len(cv.Spec.Container.Verify) > 0 {
		return stepStarted
	}
	if cv.Spec.PreRollout != nil && len(cv.Spec.PreRollout.Jobs) > 0 {
		return stepPreVerified
	}
	return stepMigrated
}
