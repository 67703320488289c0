package rollout

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
