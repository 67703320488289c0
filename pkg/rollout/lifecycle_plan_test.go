package rollout

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// withPreVerify adds two container verifications.
func withPreVerify(s *cvv1.ContainerVersionSpec) {
	s.Container.Verify = []cvv1.VerifySpec{
		{Kind: "Image", Image: "registry.example.com/scan@" + digestA},
		{Kind: "Image", Image: "registry.example.com/policy@" + digestA},
	}
}

// withMigration adds migration "schema" with the given onFailure.
func withMigration(onFailure string) func(*cvv1.ContainerVersionSpec) {
	return func(s *cvv1.ContainerVersionSpec) {
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "schema", OnFailure: onFailure,
			Template: &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "placeholder"}}}}}}}}}
	}
}

func TestLifecyclePlan(t *testing.T) {
	started := rollingCV(StepStarted, withPreVerify, withMigration("Abort"))
	preVerified := rollingCV(StepPreVerified, withPreVerify, withMigration("Rollback"))
	aborting := rollingCV(StepPreVerified, withMigration("Abort"))
	verify1, verify2 := JobName("web", PhaseVerifyBefore, "1", digestB), JobName("web", PhaseVerifyBefore, "2", digestB)
	schema := JobName("web", PhaseMigrate, "schema", digestB)
	after, before := rolloutStart.Add(time.Second), rolloutStart.Add(-time.Hour)
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "nothing before the strategy",
		world: worldOf(rollingCV(StepMigrated)),
		want:  outcome{Progress: Progress{Phase: Succeeded, Step: StepMigrated}},
	}, {
		name:  "a strategy step recorded is kept, never moved back",
		world: worldOf(rollingCV(StepWorkloadsReady, withPreVerify)),
		want:  outcome{Progress: Progress{Phase: Succeeded, Step: StepWorkloadsReady}},
	}, {
		name:  "the first verification is created",
		world: worldOf(started),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Message: "verify job " + verify1 + " started"},
			Actions: []string{"create Job " + verify1}},
	}, {
		name:  "the second verification starts when the first passed",
		world: worldOf(started, stepJob(started, PhaseVerifyBefore, "1", after, batchv1.JobComplete, "")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Message: "verify job " + verify2 + " started"},
			Actions: []string{"create Job " + verify2}},
	}, {
		name:  "a verification running",
		world: worldOf(started, stepJob(started, PhaseVerifyBefore, "1", after, "", "")),
		want:  outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Message: "waiting for verify job " + verify1}},
	}, {
		name:  "a failed verification fails the rollout without a rollback",
		world: worldOf(started, stepJob(started, PhaseVerifyBefore, "1", after, batchv1.JobFailed, "BackoffLimitExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed",
			Message: "verify job " + verify1 + " failed: BackoffLimitExceeded from the Job controller"}},
	}, {
		name:  "a verification past its activeDeadlineSeconds fails the rollout",
		world: worldOf(started, stepJob(started, PhaseVerifyBefore, "1", after, batchv1.JobFailed, "DeadlineExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed",
			Message: "verify job " + verify1 + " failed: DeadlineExceeded from the Job controller"}},
	}, {
		name: "verified: PreVerified is reported and the migration created in the same plan",
		world: worldOf(started, stepJob(started, PhaseVerifyBefore, "1", after, batchv1.JobComplete, ""),
			stepJob(started, PhaseVerifyBefore, "2", after, batchv1.JobComplete, "")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepPreVerified,
			Message: "migrate job " + schema + " started"}, Actions: []string{"create Job " + schema}},
	}, {
		name: "verified with no migrations: ready for the strategy",
		world: worldOf(rollingCV(StepStarted, withPreVerify), stepJob(started, PhaseVerifyBefore, "1", after, batchv1.JobComplete, ""),
			stepJob(started, PhaseVerifyBefore, "2", after, batchv1.JobComplete, "")),
		want: outcome{Progress: Progress{Phase: Succeeded, Step: StepMigrated}},
	}, {
		name:  "recorded PreVerified: verifications are not looked at again",
		world: worldOf(preVerified),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepPreVerified,
			Message: "migrate job " + schema + " started"}, Actions: []string{"create Job " + schema}},
	}, {
		name:  "migration running",
		world: worldOf(preVerified, stepJob(preVerified, PhaseMigrate, "schema", after, "", "")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepPreVerified,
			Message: "waiting for migrate job " + schema}},
	}, {
		name:  "migration complete",
		world: worldOf(preVerified, stepJob(preVerified, PhaseMigrate, "schema", after, batchv1.JobComplete, "")),
		want:  outcome{Progress: Progress{Phase: Succeeded, Step: StepMigrated}},
	}, {
		name: "a failed migration with onFailure Rollback asks for a revert",
		world: worldOf(preVerified, stepJob(preVerified, PhaseMigrate, "schema", after, batchv1.JobFailed, "BackoffLimitExceeded"),
			jobLog{schema, "ERROR: column exists"}),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "MigrationFailed", Step: StepPreVerified, Revert: true,
			Message: "migrate job " + schema + " failed: BackoffLimitExceeded from the Job controller; log tail:\nERROR: column exists"}},
	}, {
		name:  "a failed migration with onFailure Abort does not",
		world: worldOf(aborting, stepJob(aborting, PhaseMigrate, "schema", after, batchv1.JobFailed, "BackoffLimitExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "MigrationFailed", Step: StepPreVerified,
			Message: "migrate job " + schema + " failed: BackoffLimitExceeded from the Job controller"}},
	}, {
		name:  "a failed Job of an earlier attempt is deleted to run again",
		world: worldOf(preVerified, stepJob(preVerified, PhaseMigrate, "schema", before, batchv1.JobFailed, "BackoffLimitExceeded")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRetrying", Step: StepPreVerified,
			Message: "removing the failed Job " + schema + " of an earlier attempt"}, Actions: []string{"delete Job " + schema}},
	}, {
		name:  "a Job that passed in an earlier attempt is not rerun",
		world: worldOf(preVerified, stepJob(preVerified, PhaseMigrate, "schema", before, batchv1.JobComplete, "")),
		want:  outcome{Progress: Progress{Phase: Succeeded, Step: StepMigrated}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&Lifecycle{Jobs: &Jobs{}}).Plan(c.world)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

// The CreateJob action carries the step the executor builds at apply
// time: the right phase, name, timeout and rollback wish.
func TestPlanStepsCreateJobCarriesTheStep(t *testing.T) {
	cv := rollingCV(StepPreVerified, withMigration("Rollback"), func(s *cvv1.ContainerVersionSpec) {
		s.PreRollout.Jobs[0].TimeoutSeconds = 90
	})
	jobs := &Jobs{}
	plan := jobs.PlanSteps(worldOf(cv), jobs.MigrationSteps(cv, target))
	if len(plan.Actions) != 1 {
		t.Fatalf("actions %v, want one CreateJob", plan.Actions)
	}
	create, ok := plan.Actions[0].(CreateJob)
	if !ok {
		t.Fatalf("action %T, want CreateJob", plan.Actions[0])
	}
	got := []any{create.Name, create.Target, create.Step.Phase, create.Step.Name, create.Step.Timeout, create.Step.TTL, create.Step.RevertOnFailure}
	want := []any{JobName("web", PhaseMigrate, "schema", digestB), target, PhaseMigrate, "schema", 90 * time.Second, migrateTTL, true}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestPlannersFollowTheStrategyKind(t *testing.T) {
	planners := NewPlanners(&Jobs{})
	for kind, want := range map[string]string{
		"": cvv1.StrategySimple, cvv1.StrategySimple: cvv1.StrategySimple, cvv1.StrategyServiceBlueGreen: cvv1.StrategyServiceBlueGreen,
	} {
		cv := rollingCV(StepMigrated, func(s *cvv1.ContainerVersionSpec) { s.Strategy.Kind = kind })
		if p, ok := planners.For(cv); !ok || p.Name() != want {
			t.Errorf("kind %q: planner %v, %v; want %s", kind, p, ok, want)
		}
	}
	cv := rollingCV(StepMigrated, func(s *cvv1.ContainerVersionSpec) { s.Strategy.Kind = "Canary" })
	if p, ok := planners.For(cv); ok {
		t.Errorf("kind Canary: planner %v, want none", p)
	}
}
