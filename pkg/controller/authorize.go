package controller

import (
	"context"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// The Authorized condition and its refusal reason (also the Event reason):
// cvmanager acts for a CV only within its author's rights (pkg/authz).
const (
	ConditionAuthorized = "Authorized"
	ReasonForbidden     = authz.ReasonForbidden
)

// setupAuthz builds the author checks from Options.Authorization; without
// it (library use, in-process tests) the controller checks nothing, as
// before. `cvmanager run` always sets it.
func (c *Controller) setupAuthz(jobs *rollout.Jobs) {
	if c.opts.Authorization == nil {
		return
	}
	c.authz = &authz.Authorizer{
		Settings: *c.opts.Authorization,
		Checker:  authz.NewChecker(c.kube, c.clock),
		TemplateJob: func(ctx context.Context, ns, name string) (*batchv1.Job, error) {
			return c.kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		},
	}
	c.authz.Checker.Observe = func(answer string) { c.metrics.AuthzChecks.WithLabelValues(answer).Inc() }
	jobs.Admit = c.authz.Job
}

// AuthzStats reports the author checks' review and cache counters (zero
// when the checks are off).
func (c *Controller) AuthzStats() authz.Stats {
	if c.authz == nil {
		return authz.Stats{}
	}
	return c.authz.Checker.Stats()
}

// pullSecretNames are the Secrets cvmanager reads for a CV's registry
// credentials: the ones it names and the imagePullSecrets of the workloads
// it selects, sorted.
func pullSecretNames(cv *cvv1.ContainerVersion, workloads []workload.Workload) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, ref := range cv.Spec.ImagePullSecrets {
		add(ref.Name)
	}
	for _, w := range workloads {
		for _, ref := range w.PodTemplate().Spec.ImagePullSecrets {
			add(ref.Name)
		}
	}
	slices.Sort(names)
	return names
}

// readableSecrets drops the Secrets the CV's author may not get: cvmanager
// never reads a Secret on behalf of someone who could not read it
// (authorizePoll has already reported such a refusal).
func (c *Controller) readableSecrets(ctx context.Context, cv *cvv1.ContainerVersion, names []string) []string {
	if c.authz == nil {
		return names
	}
	var out []string
	for _, n := range names {
		if _, err := c.authz.Secrets(ctx, cv, []string{n}); err == nil {
			out = append(out, n)
		}
	}
	return out
}
