package rollout

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Labels the Job controller puts on a Job's pod template; a copied template
// must lose them or the new Job's selector would clash with the old one's.
var jobControllerLabels = []string{
	"controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name",
}

// VerifySteps turns spec verifications into Jobs. The verifier learns what
// it tests from its environment: CVMANAGER_IMAGE, _VERSION, _DIGEST, _CV,
// _NAMESPACE, _PHASE, plus extra (e.g. the verification Service).
func (j *Jobs) VerifySteps(cv *cvv1.ContainerVersion, target Target, phase string, specs []cvv1.VerifySpec, extra ...corev1.EnvVar) []JobStep {
	steps := make([]JobStep, 0, len(specs))
	for i, spec := range specs {
		steps = append(steps, JobStep{
			Phase: phase, Name: strconv.Itoa(i + 1), Timeout: stepTimeout(cv, spec.TimeoutSeconds), TTL: verifyTTL,
			Build: func(ctx context.Context) (batchv1.JobSpec, error) {
				return j.verifyJobSpec(ctx, cv, target, phase, spec, extra)
			},
		})
	}
	return steps
}

func (j *Jobs) verifyJobSpec(ctx context.Context, cv *cvv1.ContainerVersion, target Target, phase string, spec cvv1.VerifySpec, extra []corev1.EnvVar) (batchv1.JobSpec, error) {
	image, err := j.verifierImage(ctx, spec)
	if err != nil {
		return batchv1.JobSpec{}, err
	}
	env := append([]corev1.EnvVar{
		{Name: "CVMANAGER_CV", Value: cv.Name},
		{Name: "CVMANAGER_NAMESPACE", Value: cv.Namespace},
		{Name: "CVMANAGER_PHASE", Value: phase},
		{Name: "CVMANAGER_IMAGE", Value: target.Image},
		{Name: "CVMANAGER_VERSION", Value: target.Version},
		{Name: "CVMANAGER_DIGEST", Value: target.Digest},
	}, extra...)
	return batchv1.JobSpec{
		// A verification that fails has answered; retrying it would only
		// delay the verdict.
		BackoffLimit: ptr.To[int32](0),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelCV: cv.Name, LabelPhase: phase}},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "verify", Image: image, Command: spec.Command, Args: spec.Args, Env: env,
				}},
			},
		},
	}, nil
}

// verifierImage pins the verifier by digest when a tag is given, so a
// verifier re-pushed mid-rollout cannot change what "verified" meant.
func (j *Jobs) verifierImage(ctx context.Context, spec cvv1.VerifySpec) (string, error) {
	if spec.Tag == "" {
		return spec.Image, nil
	}
	if j.Resolve == nil {
		return "", fmt.Errorf("verifier %s:%s: no registry resolver configured", spec.Image, spec.Tag)
	}
	digest, err := j.Resolve(ctx, spec.Image, spec.Tag)
	if err != nil {
		return "", fmt.Errorf("resolving verifier %s:%s: %w", spec.Image, spec.Tag, err)
	}
	return spec.Image + ":" + spec.Tag + "@" + digest, nil
}

// MigrationSteps turns spec.preRollout.jobs into Jobs running the new image.
func (j *Jobs) MigrationSteps(cv *cvv1.ContainerVersion, target Target) []JobStep {
	if cv.Spec.PreRollout == nil {
		return nil
	}
	steps := make([]JobStep, 0, len(cv.Spec.PreRollout.Jobs))
	for _, spec := range cv.Spec.PreRollout.Jobs {
		steps = append(steps, JobStep{
			Phase: PhaseMigrate, Name: spec.Name, Timeout: stepTimeout(cv, spec.TimeoutSeconds), TTL: migrateTTL,
			RevertOnFailure: spec.OnFailure == "Rollback",
			Build: func(ctx context.Context) (batchv1.JobSpec, error) {
				return j.migrationJobSpec(ctx, cv, target, spec)
			},
		})
	}
	return steps
}

func (j *Jobs) migrationJobSpec(ctx context.Context, cv *cvv1.ContainerVersion, target Target, spec cvv1.PreRolloutJob) (batchv1.JobSpec, error) {
	jobSpec, err := j.migrationTemplate(ctx, cv.Namespace, spec)
	if err != nil {
		return batchv1.JobSpec{}, err
	}
	containers := spec.Containers
	if len(containers) == 0 {
		containers = []string{cv.Spec.Container.Name}
	}
	if err := setImages(&jobSpec.Template.Spec, containers, target.Image); err != nil {
		return batchv1.JobSpec{}, err
	}
	if jobSpec.Template.Spec.RestartPolicy == "" || jobSpec.Template.Spec.RestartPolicy == corev1.RestartPolicyAlways {
		jobSpec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	return jobSpec, nil
}

// migrationTemplate is the inline template or a copy of the suspended
// template Job, cleaned of what the Job controller generated for it.
func (j *Jobs) migrationTemplate(ctx context.Context, namespace string, spec cvv1.PreRolloutJob) (batchv1.JobSpec, error) {
	if spec.Template != nil {
		return *spec.Template.Spec.DeepCopy(), nil
	}
	tmpl, err := j.Client.BatchV1().Jobs(namespace).Get(ctx, spec.TemplateJobName, metav1.GetOptions{})
	if err != nil {
		return batchv1.JobSpec{}, fmt.Errorf("template Job %s: %w", spec.TemplateJobName, err)
	}
	if !ptr.Deref(tmpl.Spec.Suspend, false) {
		return batchv1.JobSpec{}, fmt.Errorf("template Job %s is not suspended: it would run on its own; set spec.suspend: true", spec.TemplateJobName)
	}
	out := *tmpl.Spec.DeepCopy()
	out.Selector, out.ManualSelector = nil, nil
	for _, l := range jobControllerLabels {
		delete(out.Template.Labels, l)
	}
	return out, nil
}

// setImages puts image into every named container (or init container) and
// fails when a name matches none: running a migration with the old image
// would be worse than not running it.
func setImages(spec *corev1.PodSpec, names []string, image string) error {
	found := map[string]bool{}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if slices.Contains(names, list[i].Name) {
				list[i].Image = image
				found[list[i].Name] = true
			}
		}
	}
	for _, n := range names {
		if !found[n] {
			return fmt.Errorf("container %q not found in the job template", n)
		}
	}
	return nil
}
