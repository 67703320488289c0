package controller

import (
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/rollout"
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

// authorizePoll checks, before the registry is asked, that the CV's author
// may read every pull Secret cvmanager would use for it. ok is false when
// the poll must not happen (refusal reported, or err to retry).
func (c *Controller) authorizePoll(ctx context.Context, cv *cvv1.ContainerVersion) (ok bool, err error) {
	if c.authz == nil {
		return true, nil
	}
	_, err = c.authz.Secrets(ctx, cv, c.pullSecretNames(cv))
	return c.authorized(ctx, cv, err, fmt.Sprintf("not polling %s:%s", cv.Spec.ImageRepo, cv.Spec.Tag), "", "")
}

// authorizeRollout checks everything a rollout of version does (Jobs,
// their ServiceAccounts, workload and Service patches, ConfigMaps) before
// its first write. It runs before a rollout starts and again before each
// step of one under way (answers are cached), so a right revoked or an
// author changed mid-rollout stops it. ok is false when nothing may be done.
func (c *Controller) authorizeRollout(ctx context.Context, cv *cvv1.ContainerVersion, version, digest string) (ok bool, err error) {
	if c.authz == nil {
		return true, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	if err != nil || sel.Empty() {
		sel = labels.Nothing()
	}
	workloads, err := c.workloads.Select(cv.Namespace, sel)
	if err != nil {
		return false, err
	}
	verdict, err := c.authz.Rollout(ctx, cv, workloads)
	if err == nil {
		reason := "Authorized"
		if verdict.Grandfathered {
			reason = "Grandfathered"
		}
		setCondition(cv, ConditionAuthorized, metav1.ConditionTrue, reason, verdict.Message(), c.clock.Now())
	}
	return c.authorized(ctx, cv, err, "not rolling out "+version, version, digest)
}

// authorized turns a check's error into the answer: a refusal is reported
// and not retried (the next poll asks again, through the cache), any other
// error is returned so the key is retried.
func (c *Controller) authorized(ctx context.Context, cv *cvv1.ContainerVersion, err error, what, version, digest string) (bool, error) {
	if err == nil {
		return true, nil
	}
	refusal, ok := authz.AsRefusal(err)
	if !ok {
		return false, err
	}
	return false, c.refuse(ctx, cv, what+": "+refusal.Error(), version, digest)
}

// refuse records a refusal: Authorized=False naming what is missing, one
// Warning Event per new message, the version shown as available. A
// rollout under way ends without blaming its version (no failedDigest),
// so granting the rights is enough for the next poll to roll it out.
func (c *Controller) refuse(ctx context.Context, cv *cvv1.ContainerVersion, message, version, digest string) error {
	cond := findCondition(cv.Status.Conditions, ConditionAuthorized)
	sameVersion := digest == "" || cv.Status.AvailableDigest == digest
	if cv.Status.Rollout == nil && sameVersion && cond != nil &&
		cond.Status == metav1.ConditionFalse && cond.Message == truncate(message, 1024) {
		return nil // already reported
	}
	now := c.clock.Now()
	if cv.Status.Rollout != nil {
		cv.Status.Rollout = nil
		setCurrStatus(cv, cvv1.StatusFailed, now)
		setCondition(cv, cvv1.ConditionReady, metav1.ConditionFalse, ReasonForbidden, message, now)
		setCondition(cv, cvv1.ConditionProgressing, metav1.ConditionFalse, ReasonForbidden, message, now)
	}
	if digest != "" {
		cv.Status.AvailableVersion, cv.Status.AvailableDigest = version, digest
	}
	setCondition(cv, ConditionAuthorized, metav1.ConditionFalse, ReasonForbidden, message, now)
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	c.metrics.AuthzRefusals.Inc()
	klog.InfoS("Refused: the author lacks rights", "cv", klog.KObj(cv), "message", message)
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonForbidden, message)
	return nil
}

// pullSecretNames are the Secrets cvmanager reads for a CV's registry
// credentials: the ones it names and the imagePullSecrets of the workloads
// it selects, sorted.
func (c *Controller) pullSecretNames(cv *cvv1.ContainerVersion) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, ref := range cv.Spec.ImagePullSecrets {
		add(ref.Name)
	}
	if sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector); err == nil {
		workloads, _ := c.workloads.Select(cv.Namespace, sel)
		for _, w := range workloads {
			for _, ref := range w.PodTemplate().Spec.ImagePullSecrets {
				add(ref.Name)
			}
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
