package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/verify"
)

// Event reasons of signature verification.
const (
	ReasonSignatureVerified = "SignatureVerified"
	ReasonSignatureRefused  = "SignatureRefused"
	ReasonSignatureAudit    = "SignatureAudit"
)

// SignatureOptions configure image signature verification.
type SignatureOptions struct {
	// Verifier checks signatures; nil disables verification (and a CV
	// asking for it is reported misconfigured).
	Verifier *verify.Verifier
	// Require makes signatures mandatory for every CV (`run
	// --require-signatures`); a CV's Audit mode cannot weaken it.
	Require bool
	// Default anchors apply to every CV; a CV's own anchors are added.
	Default verify.Policy
}

// signatureVerdict is the outcome of checking one digest for one CV.
type signatureVerdict struct {
	// applies is false when neither the CV nor the controller asks for
	// signatures.
	applies bool
	enforce bool
	result  verify.Result
}

// allowed: the digest may be deployed (verified, or Audit mode).
func (v signatureVerdict) allowed() bool { return !v.applies || v.result.Verified || !v.enforce }

// checkSignature verifies digest for cv when signatures are required. It is
// called wherever a digest is about to be written into workloads: a new
// rollout of any trigger (startRollout) and a rollback target (fail). An
// error means the registry could not be read; the caller retries.
func (c *Controller) checkSignature(ctx context.Context, cv *cvv1.ContainerVersion, digest string) (signatureVerdict, error) {
	spec := signatureSpec(cv)
	so := c.opts.Signatures
	if spec == nil && !so.Require {
		return signatureVerdict{}, nil
	}
	v := signatureVerdict{applies: true, enforce: enforced(so.Require, spec)}
	if so.Verifier == nil {
		v.result = verify.Result{Reason: verify.ReasonInvalidPolicy, Message: "this controller runs without a signature verifier"}
		return v, nil
	}
	policy, problem := c.cvPolicy(ctx, cv, spec)
	policy = so.Default.Merge(policy)
	switch {
	case problem != "":
		v.result = verify.Result{Reason: verify.ReasonInvalidPolicy, Message: problem}
	case policy.Empty():
		v.result = verify.Result{Reason: verify.ReasonInvalidPolicy, Message: "signatures are required but no trusted key or keyless identity is configured"}
	default:
		repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: registry.Auth{PullSecrets: c.pullSecrets(ctx, cv)}}
		r, err := so.Verifier.Verify(ctx, repo, digest, policy)
		if err != nil {
			c.metrics.SignatureVerifications.WithLabelValues("error").Inc()
			return v, fmt.Errorf("reading the signatures of %s@%s: %w", cv.Spec.ImageRepo, digest, err)
		}
		v.result = r
	}
	c.metrics.SignatureVerifications.WithLabelValues(verificationResult(v)).Inc()
	return v, nil
}

// enforced: a controller-wide requirement always enforces; otherwise the
// CV's mode decides, Enforce unless it says Audit.
func enforced(require bool, spec *cvv1.SignaturePolicy) bool {
	return require || spec == nil || spec.Mode != cvv1.VerifyAudit
}

func verificationResult(v signatureVerdict) string {
	switch {
	case v.result.Verified:
		return "verified"
	case v.enforce:
		return "refused"
	default:
		return "audited"
	}
}

func signatureSpec(cv *cvv1.ContainerVersion) *cvv1.SignaturePolicy {
	if cv.Spec.Policy == nil {
		return nil
	}
	return cv.Spec.Policy.Verify
}

// cvPolicy reads the CV's own anchors from its namespace: key Secrets (those
// its author may read) and the trusted-root ConfigMap. A missing one is a
// problem to report, never a reason to trust less.
func (c *Controller) cvPolicy(ctx context.Context, cv *cvv1.ContainerVersion, spec *cvv1.SignaturePolicy) (verify.Policy, string) {
	var p verify.Policy
	if spec == nil {
		return p, ""
	}
	for _, ref := range spec.Keys {
		if len(c.readableSecrets(ctx, cv, []string{ref.Name})) == 0 { // issue 19 hook
			return p, fmt.Sprintf("the CV's author may not read Secret %s holding a signature key", ref.Name)
		}
		key, ok := c.secretValue(ctx, cv.Namespace, ref)
		if !ok {
			return p, fmt.Sprintf("signature key %s/%s not found", ref.Name, ref.Key)
		}
		p.Keys = append(p.Keys, key)
	}
	for _, id := range spec.Keyless {
		p.Identities = append(p.Identities, verify.Identity{Issuer: id.Issuer, Subject: id.Subject, SubjectRegExp: id.SubjectRegExp})
	}
	if ref := spec.TrustedRoot; ref != nil {
		cm, err := c.kube.CoreV1().ConfigMaps(cv.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil || cm.Data[ref.Key] == "" {
			return p, fmt.Sprintf("trusted root ConfigMap key %s/%s not found", ref.Name, ref.Key)
		}
		p.TrustedRoot = []byte(cm.Data[ref.Key])
	}
	return p, ""
}

// setVerified records the verdict in the Verified condition.
func (c *Controller) setVerified(cv *cvv1.ContainerVersion, digest string, v signatureVerdict) {
	now := c.clock.Now()
	switch {
	case v.result.Verified:
		setCondition(cv, cvv1.ConditionVerified, metav1.ConditionTrue, verify.ReasonVerified,
			fmt.Sprintf("%s is %s", digest, v.result.Message), now)
	default:
		setCondition(cv, cvv1.ConditionVerified, metav1.ConditionFalse, v.result.Reason, v.result.Message, now)
	}
}

// refuseUnsigned reports a digest refused for its signature: workloads stay
// as they are, the digest is shown as available but held, and the refusal
// goes to the condition, an Event, the history (outcome Blocked) and the
// Blocked notification, once per digest and reason. The syncer keeps
// polling, so a signature pushed later lets the next poll roll out.
func (c *Controller) refuseUnsigned(ctx context.Context, cv *cvv1.ContainerVersion, img poller.ResolvedImage, trigger string, v signatureVerdict) error {
	version := versionName(cv, img)
	if cv.Status.AvailableDigest == img.Digest && conditionIs(cv, cvv1.ConditionReleaseBlocked, v.result.Reason) {
		return nil // already reported
	}
	now := c.clock.Now()
	message := fmt.Sprintf("refused %s (%s): %s", version, img.Digest, v.result.Message)
	cv.Status.AvailableVersion, cv.Status.AvailableDigest = version, img.Digest
	cv.Status.LastPolled = &metav1.Time{Time: now}
	setCondition(cv, cvv1.ConditionVerified, metav1.ConditionFalse, v.result.Reason, message, now)
	setCondition(cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, v.result.Reason, message, now)
	if err := c.recordBlocked(ctx, cv, img.Digest, version, trigger, v.result.Reason+": "+message); err != nil {
		return err
	}
	if err := c.updateStatus(ctx, cv); err != nil {
		return err
	}
	klog.InfoS("Image refused: signature", "cv", klog.KObj(cv), "digest", img.Digest, "reason", v.result.Reason)
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonSignatureRefused, message)
	c.notify(ctx, cv, notify.Blocked, version, img.Digest, cv.Status.SuccessVersion, message)
	return nil
}

// recordBlocked writes the refusal into the history as a rollout that never
// started (outcome Blocked).
func (c *Controller) recordBlocked(ctx context.Context, cv *cvv1.ContainerVersion, digest, version, trigger, reason string) error {
	saved := cv.Status.Rollout
	cv.Status.Rollout = &cvv1.RolloutStatus{Version: version, Digest: digest, FromVersion: cv.Status.SuccessVersion,
		FromDigest: cv.Status.SuccessDigest, Trigger: trigger, StartTime: metav1.Time{Time: c.clock.Now()}}
	defer func() { cv.Status.Rollout = saved }()
	return c.appendHistory(ctx, cv, rollout.Progress{}, history.OutcomeBlocked, reason)
}

// rollbackRefused verifies the rollback target; a target that fails under
// Enforce is not used, and the reason is returned.
func (c *Controller) rollbackRefused(ctx context.Context, cv *cvv1.ContainerVersion) (string, error) {
	v, err := c.checkSignature(ctx, cv, cv.Status.SuccessDigest)
	if err != nil || v.allowed() {
		return "", err
	}
	message := fmt.Sprintf("rollback target %s (%s) refused: %s", cv.Status.SuccessVersion, cv.Status.SuccessDigest, v.result.Message)
	c.recorder.Event(cv, corev1.EventTypeWarning, ReasonSignatureRefused, message)
	return message, nil
}

// auditWarning tells, in Audit mode, that an unverified image goes ahead.
func (c *Controller) auditWarning(cv *cvv1.ContainerVersion, version, digest string, v signatureVerdict) {
	if v.applies && !v.result.Verified && !v.enforce {
		c.recorder.Eventf(cv, corev1.EventTypeWarning, ReasonSignatureAudit,
			"Rolling out %s (%s) without a valid signature (Audit mode): %s: %s", version, digest, v.result.Reason, v.result.Message)
	}
}
