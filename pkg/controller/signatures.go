package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/pkg/workload"
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
// rollout of any trigger (startRollout) and a rollback target (fail). The
// signatures are read with the pull Secrets of cv and its selected
// workloads. An error means the registry could not be read; the caller
// retries.
func (c *Controller) checkSignature(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, digest string) (signatureVerdict, error) {
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
		repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: registry.Auth{PullSecrets: c.pullSecrets(ctx, cv, workloads)}}
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
func setVerified(cv *cvv1.ContainerVersion, digest string, v signatureVerdict, now time.Time) {
	switch {
	case v.result.Verified:
		setCondition(cv, cvv1.ConditionVerified, metav1.ConditionTrue, verify.ReasonVerified,
			fmt.Sprintf("%s is %s", digest, v.result.Message), now)
	default:
		setCondition(cv, cvv1.ConditionVerified, metav1.ConditionFalse, v.result.Reason, v.result.Message, now)
	}
}

// rollbackRefused verifies the rollback target; a target that fails under
// Enforce is not used, and the reason is returned.
func (c *Controller) rollbackRefused(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (string, error) {
	v, err := c.checkSignature(ctx, cv, workloads, cv.Status.SuccessDigest)
	if err != nil || v.allowed() {
		return "", err
	}
	return fmt.Sprintf("rollback target %s (%s) refused: %s", cv.Status.SuccessVersion, cv.Status.SuccessDigest, v.result.Message), nil
}

// auditWarning tells, in Audit mode, that an unverified image goes ahead.
func auditWarning(version, digest string, v signatureVerdict) (effect, bool) {
	if !v.applies || v.result.Verified || v.enforce {
		return effect{}, false
	}
	return warning(ReasonSignatureAudit, fmt.Sprintf("Rolling out %s (%s) without a valid signature (Audit mode): %s: %s",
		version, digest, v.result.Reason, v.result.Message)), true
}
