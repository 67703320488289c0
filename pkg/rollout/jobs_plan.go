package rollout

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// PlanSteps is RunAll as a plan: it judges the steps' Jobs as w.Jobs shows
// them and reports on the first step that is not finished, with the action
// that moves it on (create its Job, or delete the failed Job of an earlier
// attempt so that the next sync creates it afresh). A failed step's
// Progress names the Job, quotes w.JobLogs' tail of its log and asks for a
// rollback when the step says so (RevertOnFailure).
func (j *Jobs) PlanSteps(w World, steps []JobStep) Plan {
	for _, step := range steps {
		plan := planStep(w, step)
		if plan.Progress.Phase != Succeeded {
			plan.Progress.Revert = plan.Progress.Phase == Failed && step.RevertOnFailure
			return plan
		}
	}
	return Plan{Progress: Progress{Phase: Succeeded}}
}

// planStep is one step: its Job is found by its deterministic name, so a
// restarted controller finds the Job it created before.
func planStep(w World, step JobStep) Plan {
	name := JobName(w.CV.Name, step.Phase, step.Name, w.Target.Digest)
	job := w.Jobs[name]
	switch {
	case job == nil:
		return Plan{
			Progress: inProgress("JobRunning", "%s job %s started", step.Phase, name),
			Actions:  []Action{CreateJob{Name: name, Step: step, Target: w.Target}},
		}
	case stale(job, w.CV):
		// Left over from an earlier, failed attempt at this version (the
		// user cleared the failure to retry): run it again.
		return Plan{
			Progress: inProgress("JobRetrying", "removing the failed Job %s of an earlier attempt", job.Name),
			Actions:  []Action{DeleteJob{Job: job}},
		}
	}
	return Plan{Progress: judgeJob(job, step, w.JobLogs[job.Name])}
}

// JobLogs reads, for World.JobLogs, the log tails of the Jobs a plan will
// report as failed: failed Jobs of the rollout under way. Failed Jobs of
// other versions, and stale ones of an earlier attempt (which the plan
// deletes instead), cost no request.
func (j *Jobs) JobLogs(ctx context.Context, cv *cvv1.ContainerVersion, jobs map[string]*batchv1.Job) map[string]string {
	r := cv.Status.Rollout
	if r == nil {
		return nil
	}
	logs := map[string]string{}
	for name, job := range jobs {
		failed, _ := jobFinished(job, batchv1.JobFailed)
		if !failed || stale(job, cv) || job.Labels[LabelDigest] != shortDigest(r.Digest) {
			continue
		}
		if tail := j.LogTail(ctx, job); tail != "" {
			logs[name] = tail
		}
	}
	return logs
}
