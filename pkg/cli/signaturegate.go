package cli

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/promote"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/verify"
)

// signatureGate keeps `promote` and `cr tags add` from moving an
// environment tag onto an image the CVs following that tag would refuse:
// the tag would point at an image that never deploys, and the next poll
// would only report the refusal. --force skips it.
type signatureGate struct {
	kube     kubernetes.Interface
	verifier *verify.Verifier
	// refused words a refusal for the command that asked (cv refuses
	// the image because of detail); nil words it as a promotion's.
	refused func(cv *cvv1.ContainerVersion, detail string) error
}

func newSignatureGate(kube kubernetes.Interface, reader registry.ArtifactReader) signatureGate {
	return signatureGate{kube: kube, verifier: verify.New(reader, clock.RealClock{})}
}

// check verifies digest against the signature policy of every CV in cvs
// that enforces one; the first refusal is returned as g.refused words it
// (promote.ErrRefused by default).
// Audit-mode CVs deploy unverified images, so they do not refuse here.
func (g signatureGate) check(ctx context.Context, cvs []cvv1.ContainerVersion, repo registry.Repo, digest string) error {
	for i := range cvs {
		cv := &cvs[i]
		spec := signatureSpec(cv)
		if spec == nil || spec.Mode == cvv1.VerifyAudit {
			continue
		}
		policy, err := g.policyOf(ctx, cv, spec)
		if err != nil {
			return g.refusal(cv, err.Error())
		}
		r, err := g.verifier.Verify(ctx, repo, digest, policy)
		if err != nil {
			return fmt.Errorf("reading the signatures of %s@%s: %w", repo.Name, digest, err)
		}
		if !r.Verified {
			return g.refusal(cv, fmt.Sprintf("it would refuse %s: %s: %s", digest, r.Reason, r.Message))
		}
	}
	return nil
}

// refusal is the error of a refused check.
func (g signatureGate) refusal(cv *cvv1.ContainerVersion, detail string) error {
	if g.refused != nil {
		return g.refused(cv, detail)
	}
	return fmt.Errorf("%w: CV %s/%s: %s (--force to tag anyway)", promote.ErrRefused, cv.Namespace, cv.Name, detail)
}

func signatureSpec(cv *cvv1.ContainerVersion) *cvv1.SignaturePolicy {
	if cv.Spec.Policy == nil {
		return nil
	}
	return cv.Spec.Policy.Verify
}

// policyOf reads the CV's anchors from its namespace, as the controller
// does: key Secrets and the trusted-root ConfigMap.
func (g signatureGate) policyOf(ctx context.Context, cv *cvv1.ContainerVersion, spec *cvv1.SignaturePolicy) (verify.Policy, error) {
	var p verify.Policy
	for _, ref := range spec.Keys {
		secret, err := g.kube.CoreV1().Secrets(cv.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil || len(secret.Data[ref.Key]) == 0 {
			return p, fmt.Errorf("cannot read signature key %s/%s: %v", ref.Name, ref.Key, err)
		}
		p.Keys = append(p.Keys, secret.Data[ref.Key])
	}
	for _, id := range spec.Keyless {
		p.Identities = append(p.Identities, verify.Identity{Issuer: id.Issuer, Subject: id.Subject, SubjectRegExp: id.SubjectRegExp})
	}
	if ref := spec.TrustedRoot; ref != nil {
		cm, err := g.kube.CoreV1().ConfigMaps(cv.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil || cm.Data[ref.Key] == "" {
			return p, fmt.Errorf("cannot read trusted root %s/%s: %v", ref.Name, ref.Key, err)
		}
		p.TrustedRoot = []byte(cm.Data[ref.Key])
	}
	if p.Empty() {
		return p, fmt.Errorf("spec.policy.verify names no trusted key or keyless identity")
	}
	return p, nil
}

// followers are the CVs a tag move affects: the one named by --cv, or every
// CV watching repo at one of tags, listed through the kubeconfig.
func followers(ctx context.Context, cvClient versioned.Interface, cvFlag, defaultNamespace, repo string, tags []string) ([]cvv1.ContainerVersion, error) {
	if cvFlag != "" {
		key, err := splitKey(cvFlag, defaultNamespace)
		if err != nil {
			return nil, fmt.Errorf("--cv: %w", err)
		}
		cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("--cv: %w", err)
		}
		return []cvv1.ContainerVersion{*cv}, nil
	}
	list, err := cvClient.CvmanagerV1alpha1().ContainerVersions("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []cvv1.ContainerVersion
	for _, cv := range list.Items {
		if strings.TrimSuffix(cv.Spec.ImageRepo, "/") == repo && containsString(tags, cv.Spec.Tag) {
			out = append(out, cv)
		}
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
