package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/history"
)

// Labels on every Job cvmanager creates. The controller watches only Jobs
// carrying LabelCV, so its cache holds its own Jobs and nothing else.
const (
	LabelCV     = "cvmanager.dev/cv"
	LabelDigest = "cvmanager.dev/digest"
	LabelPhase  = "cvmanager.dev/phase"
)

// Job phases, used in Job names and the phase label.
const (
	PhaseVerifyBefore = "verify"
	PhaseMigrate      = "migrate"
	PhaseVerifyAfter  = "postverify"
)

// Finished verification Jobs are deleted after an hour; migration Jobs are
// kept a week, long enough to read their logs after an incident.
const (
	verifyTTL  = int32(3600)
	migrateTTL = int32(7 * 24 * 3600)
	logTail    = int64(20)
)

// JobResolver pins a verifier image given by repo and tag to its digest.
type JobResolver func(ctx context.Context, repo, tag string) (digest string, err error)

// Jobs creates and watches the Jobs of a rollout: verifications and
// migrations. A Job's name is derived from the CV, the phase, the step name
// and the digest under test, so the same step for the same version finds the
// same Job after a restart instead of creating a second one.
type Jobs struct {
	Client  kubernetes.Interface
	Lister  batchlisters.JobLister
	Resolve JobResolver
	// Admit, when set, may refuse a Job just before it is created, on the
	// spec actually built (pkg/authz: the CV author's rights). A refusal
	// (*authz.Refusal) fails the step as misconfigured; any other error is
	// retried.
	Admit func(ctx context.Context, cv *cvv1.ContainerVersion, spec *batchv1.JobSpec) error
}

// JobStep is one Job to run: where it comes from and how long it may take.
type JobStep struct {
	Phase   string
	Name    string
	Timeout time.Duration
	TTL     int32
	// RevertOnFailure asks for a rollback when this Job fails (a
	// migration with onFailure: Rollback).
	RevertOnFailure bool
	// Build returns the Job's spec; it is called only when the Job does not
	// exist yet.
	Build func(ctx context.Context) (batchv1.JobSpec, error)
}

// stale is a failed Job created before the current rollout began.
func stale(job *batchv1.Job, cv *cvv1.ContainerVersion) bool {
	r := cv.Status.Rollout
	failed, _ := jobFinished(job, batchv1.JobFailed)
	return failed && r != nil && job.CreationTimestamp.Before(&r.StartTime)
}

// deleteJob removes exactly the Job that was judged stale (UID
// precondition): a Job of the same name created since is not touched. Gone
// already (NotFound) or replaced (Conflict) both mean the deletion is done.
func deleteJob(ctx context.Context, client kubernetes.Interface, job *batchv1.Job) error {
	err := client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting the failed Job %s of an earlier attempt: %w", job.Name, err)
	}
	return nil
}

// createJob builds, admits and creates the Job of step. It returns a
// Progress only when the outcome decides the rollout: a spec that cannot be
// built or that the API server rejects will not get better by retrying
// (Failed JobInvalid), and a refusal by Admit is the cluster's
// configuration (misconfigured). Other errors are returned for a retry; a
// Job that already exists is the one a previous sync created.
func (j *Jobs) createJob(ctx context.Context, client kubernetes.Interface, cv *cvv1.ContainerVersion, target Target, step JobStep, name string) (*Progress, error) {
	spec, err := step.Build(ctx)
	if err != nil {
		return &Progress{Phase: Failed, Reason: "JobInvalid", Message: fmt.Sprintf("%s job %q: %v", step.Phase, step.Name, err)}, nil
	}
	if j.Admit != nil { // issue 19 hook
		if err := j.Admit(ctx, cv, &spec); err != nil {
			if _, refused := authz.AsRefusal(err); !refused {
				return nil, err
			}
			p := misconfigured(authz.ReasonForbidden, "%s job %q: %v", step.Phase, step.Name, err)
			return &p, nil
		}
	}
	_, err = client.BatchV1().Jobs(cv.Namespace).Create(ctx, newJob(cv, target, step, name, spec), metav1.CreateOptions{FieldManager: "cvmanager"})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return &Progress{Phase: Failed, Reason: "JobInvalid", Message: fmt.Sprintf("%s job %q rejected: %v", step.Phase, step.Name, err)}, nil
		}
		return nil, fmt.Errorf("creating Job %s: %w", name, err)
	}
	return nil, nil
}

// newJob wraps spec with what cvmanager adds to every Job: the step's
// deadline (the step timeout is enforced by the Job controller, which then
// marks the Job Failed with DeadlineExceeded), the clean-up TTL, the labels
// the controller's Job cache selects on and the CV as owner.
func newJob(cv *cvv1.ContainerVersion, target Target, step JobStep, name string, spec batchv1.JobSpec) *batchv1.Job {
	spec.ActiveDeadlineSeconds = ptr.To(int64(step.Timeout.Seconds()))
	spec.TTLSecondsAfterFinished = ptr.To(step.TTL)
	spec.Suspend = nil
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cv.Namespace,
			Labels: map[string]string{LabelCV: cv.Name, LabelDigest: shortDigest(target.Digest), LabelPhase: step.Phase},
			Annotations: map[string]string{
				"cvmanager.dev/version": target.Version, "cvmanager.dev/image": target.Image,
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cv, cvv1.SchemeGroupVersion.WithKind("ContainerVersion"))},
		},
		Spec: spec,
	}
}

// judgeJob is the verdict on a step from its Job's conditions; tail is the
// end of a failed Job's log ("" when unknown), quoted in the message so the
// failure Event says why without a kubectl logs.
func judgeJob(job *batchv1.Job, step JobStep, tail string) Progress {
	if done, _ := jobFinished(job, batchv1.JobComplete); done {
		return Progress{Phase: Succeeded, Reason: "JobComplete", Message: fmt.Sprintf("%s job %s complete", step.Phase, job.Name)}
	}
	if failed, cond := jobFinished(job, batchv1.JobFailed); failed {
		msg := fmt.Sprintf("%s job %s failed: %s %s", step.Phase, job.Name, cond.Reason, cond.Message)
		if tail != "" {
			msg += "; log tail:\n" + tail
		}
		return Progress{Phase: Failed, Reason: jobFailedReason(step.Phase), Message: msg}
	}
	return inProgress("JobRunning", "waiting for %s job %s", step.Phase, job.Name)
}

func jobFailedReason(phase string) string {
	if phase == PhaseMigrate {
		return "MigrationFailed"
	}
	return "VerificationFailed"
}

func jobFinished(job *batchv1.Job, condType batchv1.JobConditionType) (bool, batchv1.JobCondition) {
	for _, c := range job.Status.Conditions {
		if c.Type == condType && c.Status == corev1.ConditionTrue {
			return true, c
		}
	}
	return false, batchv1.JobCondition{}
}

// LogTail is the end of the log of the Job's most recent pod, best effort:
// a pod without a kubelet (or already gone) has no log to show. The
// controller's observe phase calls it for failed Jobs only (World.JobLogs),
// so planning stays free of API calls.
func (j *Jobs) LogTail(ctx context.Context, job *batchv1.Job) string {
	pods, err := j.Client.CoreV1().Pods(job.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{"batch.kubernetes.io/job-name": job.Name}.String(),
	})
	if err != nil || len(pods.Items) == 0 {
		return ""
	}
	pod := pods.Items[len(pods.Items)-1]
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := j.Client.CoreV1().Pods(job.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{TailLines: ptr.To(logTail)}).Stream(ctx)
	if err != nil {
		return ""
	}
	defer func() { _ = stream.Close() }()
	out, _ := io.ReadAll(io.LimitReader(stream, 4<<10))
	return strings.TrimSpace(string(out))
}

// JobName is <cv>-<phase>-<step>-<digest prefix>, cut to the 63 characters
// a Job name may have (its pods' labels carry it) while keeping the digest
// part, which is what makes the name unique per version.
func JobName(cv, phase, step, digest string) string {
	suffix := "-" + shortDigest(digest)
	base := fmt.Sprintf("%s-%s-%s", cv, phase, step)
	if max := 63 - len(suffix); len(base) > max {
		sum := sha256.Sum256([]byte(base))
		base = strings.TrimRight(base[:max-7], "-.") + "-" + hex.EncodeToString(sum[:])[:6]
	}
	return base + suffix
}

func shortDigest(digest string) string {
	hexPart := strings.TrimPrefix(digest, "sha256:")
	if len(hexPart) > 12 {
		hexPart = hexPart[:12]
	}
	return hexPart
}

// JobRecords lists the Jobs of a rollout for its history record.
func JobRecords(lister batchlisters.JobLister, cv *cvv1.ContainerVersion, digest string) []history.JobRecord {
	jobs, err := lister.Jobs(cv.Namespace).List(labels.SelectorFromSet(labels.Set{LabelCV: cv.Name, LabelDigest: shortDigest(digest)}))
	if err != nil {
		return nil
	}
	slices.SortFunc(jobs, func(a, b *batchv1.Job) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	var records []history.JobRecord
	for _, job := range jobs {
		rec := history.JobRecord{Name: job.Name, Outcome: "Running"}
		if done, _ := jobFinished(job, batchv1.JobComplete); done {
			rec.Outcome = "Success"
		} else if failed, cond := jobFinished(job, batchv1.JobFailed); failed {
			rec.Outcome, rec.Reason = "Failed", cond.Reason+": "+cond.Message
		}
		records = append(records, rec)
	}
	return records
}

func inProgress(reason, format string, args ...any) Progress {
	return Progress{Phase: InProgress, Reason: reason, Message: fmt.Sprintf(format, args...)}
}
