package rollouts

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// migrationCV runs one migration Job (the new image, as "app") and one
// verification before any workload changes. A version whose tag contains
// "failjob" makes the migration's pod fail (the kwok marker).
func migrationCV(e *e2eenv.Env, name, repo, onFailure string) *cvv1.ContainerVersion {
	return gen.NewCV(e.NS, name, repo, func(s *cvv1.ContainerVersionSpec) {
		s.Container.Verify = []cvv1.VerifySpec{{Kind: "Image", Image: "preflight:ok"}}
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{
			Name: "schema", OnFailure: onFailure,
			Template: &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "app", Image: "replaced", Args: []string{"migrate"}}},
				}},
			}},
		}}}
	})
}

func createDeployment(e *e2eenv.Env, name string) {
	e.T.Helper()
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, "placeholder:v0", 1), metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
}

// TestFailedMigrationWithAbortChangesNoWorkload: v1 migrates and rolls out;
// v2's migration fails and, with onFailure Abort, the Deployment is never
// patched, even though spec.rollback is on.
func TestFailedMigrationWithAbortChangesNoWorkload(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/db")
	createDeployment(e, "db")
	d1 := reg.MustPush(t, "team/db", "v1", "env-prod")
	cv := migrationCV(e, "db", repo, "Abort")
	cv.Spec.Rollback.Enabled = true
	e.CreateCV(cv)
	e.StartController(reg.Resolver(t))
	e.WaitStatus("db", cvv1.StatusSuccess, d1, 60*time.Second)
	first := e.History("db")[0]
	assertJobs(t, first.Jobs, 2)
	assertJobOutcome(t, first.Jobs, "verify-1", "Success")
	assertJobOutcome(t, first.Jobs, "migrate-schema", "Success")
	generation := e.DeploymentGeneration("db")

	d2 := reg.MustPush(t, "team/db", "v2-failjob", "env-prod")
	e.WaitStatus("db", cvv1.StatusFailed, d2, 60*time.Second)
	if got := e.DeploymentImage("db"); got != gen.Pinned(repo, "v1", d1) {
		t.Errorf("Deployment runs %s after an aborted migration", got)
	}
	if g := e.DeploymentGeneration("db"); g != generation {
		t.Errorf("Deployment generation %d → %d: it was patched", generation, g)
	}
	rec := e.History("db")[0]
	if rec.Outcome != "Failed" || !strings.HasPrefix(rec.Reason, "MigrationFailed") {
		t.Errorf("history: outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	assertJobOutcome(t, rec.Jobs, "migrate-schema", "Failed")
	if n := e.EventReasons("db")["RolloutFailed"]; n != 1 {
		t.Errorf("%d RolloutFailed events, want 1", n)
	}
}

// TestFailedMigrationWithRollbackRestoresPreviousDigest: a workload that
// was changed out of band while v2's migration ran is put back on the last
// good digest when the migration fails with onFailure Rollback.
func TestFailedMigrationWithRollbackRestoresPreviousDigest(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/billing")
	createDeployment(e, "billing")
	d1 := reg.MustPush(t, "team/billing", "v1", "env-prod")
	e.CreateCV(migrationCV(e, "billing", repo, "Rollback"))
	stop := e.StartController(reg.Resolver(t))
	e.WaitStatus("billing", cvv1.StatusSuccess, d1, 60*time.Second)
	stop()

	d2 := reg.MustPush(t, "team/billing", "v2-failjob", "env-prod")
	patchImage(e, "billing", gen.Pinned(repo, "v2-failjob", d2)) // a partial update by hand
	e.StartController(reg.Resolver(t))
	e.WaitStatus("billing", cvv1.StatusFailed, d2, 60*time.Second)
	if got := e.DeploymentImage("billing"); got != gen.Pinned(repo, "v1", d1) {
		t.Errorf("Deployment runs %s, want the previous digest back", got)
	}
	if rec := e.History("billing")[0]; rec.Outcome != "RolledBack" {
		t.Errorf("history outcome %s, want RolledBack", rec.Outcome)
	}
}

// TestRestartDuringMigrationCreatesTheJobOnce: the controller is stopped as
// soon as the migration Job exists and a new one takes over; the Job is the
// same object (deterministic name per version) and the rollout finishes.
func TestRestartDuringMigrationCreatesTheJobOnce(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/orders")
	createDeployment(e, "orders")
	d1 := reg.MustPush(t, "team/orders", "v1", "env-prod")
	e.CreateCV(migrationCV(e, "orders", repo, "Abort"))
	stop := e.StartController(reg.Resolver(t))
	var first *batchv1.Job
	e.Eventually(60*time.Second, "the migration Job", func() (bool, error) {
		jobs := migrationJobs(e, "orders")
		if len(jobs) > 0 {
			first = &jobs[0]
		}
		return first != nil, nil
	})
	stop()
	e.StartController(reg.Resolver(t))
	e.WaitStatus("orders", cvv1.StatusSuccess, d1, 60*time.Second)
	jobs := migrationJobs(e, "orders")
	if len(jobs) != 1 || jobs[0].UID != first.UID {
		t.Errorf("migration Jobs after restart: %d (first UID %s)", len(jobs), first.UID)
	}
	if got := e.DeploymentImage("orders"); got != gen.Pinned(repo, "v1", d1) {
		t.Errorf("Deployment runs %s", got)
	}
}

func migrationJobs(e *e2eenv.Env, cv string) []batchv1.Job {
	e.T.Helper()
	list, err := e.Kube.BatchV1().Jobs(e.NS).List(e.Ctx, metav1.ListOptions{
		LabelSelector: labels.Set{rollout.LabelCV: cv, rollout.LabelPhase: rollout.PhaseMigrate}.String()})
	e2eenv.Must(e.T, err)
	return list.Items
}

func patchImage(e *e2eenv.Env, name, image string) {
	e.T.Helper()
	d, err := e.Kube.AppsV1().Deployments(e.NS).Get(e.Ctx, name, metav1.GetOptions{})
	e2eenv.Must(e.T, err)
	d.Spec.Template.Spec.Containers[0].Image = image
	_, err = e.Kube.AppsV1().Deployments(e.NS).Update(e.Ctx, d, metav1.UpdateOptions{})
	e2eenv.Must(e.T, err)
}

func assertJobs(t *testing.T, jobs []history.JobRecord, want int) {
	t.Helper()
	if len(jobs) != want {
		t.Fatalf("history lists %d jobs, want %d: %+v", len(jobs), want, jobs)
	}
}

func assertJobOutcome(t *testing.T, jobs []history.JobRecord, nameContains, outcome string) {
	t.Helper()
	for _, j := range jobs {
		if strings.Contains(j.Name, nameContains) {
			if j.Outcome != outcome {
				t.Errorf("job %s outcome %s, want %s", j.Name, j.Outcome, outcome)
			}
			return
		}
	}
	t.Errorf("no job named *%s* in %+v", nameContains, jobs)
}
