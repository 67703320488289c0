package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/sigstoretest"
)

// signedEnv is a controller that verifies signatures, a registry, and a
// trusted key stored in a Secret of the test's namespace.
type signedEnv struct {
	e   *e2eenv.Env
	reg *e2eenv.Registry
	key *sigstoretest.Key
}

func newSignedEnv(t *testing.T, edit ...func(*controller.Options)) *signedEnv {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	key := sigstoretest.NewKey(t)
	_, err := e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cosign"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM()},
	}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	resolver, reader := reg.ResolverAndReader(t)
	e.StartController(resolver, append([]func(*controller.Options){func(o *controller.Options) {
		o.Signatures = controller.SignatureOptions{Verifier: verify.New(reader, clock.RealClock{})}
	}}, edit...)...)
	return &signedEnv{e: e, reg: reg, key: key}
}

// app creates a Deployment and a CV following env-prod of team/<name>
// whose policy trusts the Secret's key.
func (s *signedEnv) app(name string, edit ...func(*cvv1.ContainerVersionSpec)) string {
	repo := s.reg.Repo("team/" + name)
	_, err := s.e.Kube.AppsV1().Deployments(s.e.NS).Create(s.e.Ctx, gen.NewDeployment(s.e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(s.e.T, err)
	s.e.CreateCV(gen.NewCV(s.e.NS, name, repo, append([]func(*cvv1.ContainerVersionSpec){func(spec *cvv1.ContainerVersionSpec) {
		spec.Policy = &cvv1.PolicySpec{Verify: &cvv1.SignaturePolicy{Keys: []cvv1.SecretKeyRef{{Name: "cosign", Key: "cosign.pub"}}}}
	}}, edit...)...))
	return repo
}

// push pushes a version to env-prod, signed by sign when not nil.
func (s *signedEnv) push(name, version string, sign func(repo, digest string) []sigstoretest.Signature) string {
	repo := s.reg.Repo("team/" + name)
	digest := s.reg.MustPush(s.e.T, "team/"+name, version)
	if sign != nil {
		sigstoretest.PushSignatures(s.e.T, repo, digest, sign(repo, digest)...)
	}
	if _, err := s.reg.MoveTag("team/"+name, "env-prod", version); err != nil {
		s.e.T.Fatal(err)
	}
	return digest
}

func (s *signedEnv) signedBy(k *sigstoretest.Key) func(repo, digest string) []sigstoretest.Signature {
	return func(repo, digest string) []sigstoretest.Signature {
		return []sigstoretest.Signature{k.Sign(s.e.T, repo, digest)}
	}
}

// waitRefused waits until the CV refuses digest with reason.
func (s *signedEnv) waitRefused(name, digest, reason string) *cvv1.ContainerVersion {
	var cv *cvv1.ContainerVersion
	s.e.Eventually(30*time.Second, "refused with "+reason, func() (bool, error) {
		cv = s.e.GetCV(name)
		refused := cv.Status.AvailableDigest == digest &&
			conditionHas(cv, cvv1.ConditionVerified, metav1.ConditionFalse, reason) &&
			conditionHas(cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, reason)
		return refused, fmt.Errorf("available %s, conditions %+v", cv.Status.AvailableDigest, cv.Status.Conditions)
	})
	return cv
}

// TestOnlySignedImagesRollOut: a signed image rolls out and its signer is
// recorded; unsigned, another key and a signature over another digest are
// each refused with their reason, workloads untouched, an Event and a
// Blocked history record; a signature pushed later rolls out on the next
// poll; in steady state verification costs no request.
func TestOnlySignedImagesRollOut(t *testing.T) {
	s := newSignedEnv(t)
	e := s.e
	repo := s.app("web")
	d1 := s.push("web", "v1", s.signedBy(s.key))
	cv := e.WaitStatus("web", cvv1.StatusSuccess, d1, 60*time.Second)
	if !e2eenv.ConditionIs(cv, cvv1.ConditionVerified, verify.ReasonVerified) {
		t.Errorf("Verified condition: %+v", cv.Status.Conditions)
	}
	if records := e.History("web"); len(records) == 0 || !strings.HasPrefix(records[0].Signer, "key ") {
		t.Errorf("history does not name the signer: %+v", records)
	}

	// Steady state: polls HEAD the tag; no signature request is made
	// again. Three polls seen at the registry: the first two ran to
	// their end, GETs included, before the third arrived.
	gets := s.reg.Count("GET", "manifests") + s.reg.Count("GET", "blobs")
	waitPolls(e, s.reg, s.reg.Count("HEAD", "manifests"), 3, 30*time.Second)
	if got := s.reg.Count("GET", "manifests") + s.reg.Count("GET", "blobs"); got != gets {
		t.Errorf("steady state made %d GETs", got-gets)
	}

	other := sigstoretest.NewKey(t)
	refusals := []struct {
		version, reason string
		sign            func(repo, digest string) []sigstoretest.Signature
	}{
		{"v2", verify.ReasonUnsigned, nil},
		{"v3", verify.ReasonWrongKey, s.signedBy(other)},
		{"v4", verify.ReasonDigestMismatch, func(repo, _ string) []sigstoretest.Signature {
			return []sigstoretest.Signature{s.key.Sign(t, repo, d1)} // a valid signature, of v1
		}},
	}
	for _, r := range refusals {
		digest := s.push("web", r.version, r.sign)
		s.waitRefused("web", digest, r.reason)
		if got := e.DeploymentImage("web"); got != gen.Pinned(repo, "v1", d1) {
			t.Fatalf("%s refused but deployed: %s", r.version, got)
		}
	}
	e.WaitEvents("web", map[string]int{controller.ReasonSignatureRefused: len(refusals)})
	blocked := 0
	for _, rec := range e.History("web") {
		if rec.Outcome == history.OutcomeBlocked {
			blocked++
		}
	}
	if blocked != len(refusals) {
		t.Errorf("%d Blocked history records, want %d", blocked, len(refusals))
	}

	// The last refused image gets a valid signature: the next poll rolls it out.
	d4 := s.e.GetCV("web").Status.AvailableDigest
	sigstoretest.PushSignatures(t, repo, d4, s.key.Sign(t, repo, d4))
	e.WaitStatus("web", cvv1.StatusSuccess, d4, 60*time.Second)
}

// TestKeylessIdentities: a keyless signature from the trusted CA rolls out
// when its identity matches, and is refused when it does not or when its
// payload was altered after signing.
func TestKeylessIdentities(t *testing.T) {
	s := newSignedEnv(t)
	e := s.e
	ca := sigstoretest.NewCA(t)
	_, err := e.Kube.CoreV1().ConfigMaps(e.NS).Create(e.Ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "sigstore"}, Data: map[string]string{"trusted_root.json": string(ca.TrustedRootJSON(t))},
	}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	const issuer, subject = "https://ci.example.com", "https://ci.example.com/team/app/release"
	keyless := func(re string) func(*cvv1.ContainerVersionSpec) {
		return func(spec *cvv1.ContainerVersionSpec) {
			spec.Policy.Verify = &cvv1.SignaturePolicy{
				Keyless:     []cvv1.KeylessIdentity{{Issuer: issuer, SubjectRegExp: re}},
				TrustedRoot: &cvv1.ConfigMapKeyRef{Name: "sigstore", Key: "trusted_root.json"},
			}
		}
	}
	sign := func(repo, digest string) []sigstoretest.Signature {
		return []sigstoretest.Signature{ca.Sign(t, subject, issuer, repo, digest)}
	}
	s.app("match", keyless(`https://ci\.example\.com/team/.*`))
	s.app("mismatch", keyless(`https://ci\.example\.com/other/.*`))
	good := s.push("match", "v1", sign)
	bad := s.push("mismatch", "v1", sign)
	cv := e.WaitStatus("match", cvv1.StatusSuccess, good, 60*time.Second)
	if c := findCondition(cv, cvv1.ConditionVerified); c == nil || !strings.Contains(c.Message, subject) {
		t.Errorf("Verified condition should name the signer: %+v", c)
	}
	s.waitRefused("mismatch", bad, verify.ReasonIdentityMismatch)

	// A valid keyless signature of another image whose payload an attacker
	// pointed at this one.
	s.app("tampered", keyless(`https://ci\.example\.com/team/.*`))
	other := s.reg.MustPush(t, "team/tampered", "base")
	tampered := s.push("tampered", "v1", func(repo, digest string) []sigstoretest.Signature {
		sig := ca.Sign(t, subject, issuer, repo, other)
		sig.Payload = sigstoretest.Payload(t, repo, digest)
		return []sigstoretest.Signature{sig}
	})
	s.waitRefused("tampered", tampered, verify.ReasonTamperedSignature)
	if got := e.DeploymentImage("tampered"); strings.Contains(got, tampered) {
		t.Errorf("tampered image deployed: %s", got)
	}
}

// TestAuditModeAndRollbackTarget: Audit rolls an unsigned image out with a
// warning; once the CV enforces, a failed rollout is not rolled back to
// that unsigned image.
func TestAuditModeAndRollbackTarget(t *testing.T) {
	s := newSignedEnv(t)
	e := s.e
	repo := s.app("audit", func(spec *cvv1.ContainerVersionSpec) {
		spec.Policy.Verify.Mode = cvv1.VerifyAudit
		spec.TimeoutSeconds = 8
		spec.Rollback.Enabled = true
	})
	d1 := s.push("audit", "v1", nil)
	cv := e.WaitStatus("audit", cvv1.StatusSuccess, d1, 60*time.Second)
	if !conditionHas(cv, cvv1.ConditionVerified, metav1.ConditionFalse, verify.ReasonUnsigned) {
		t.Errorf("Audit should warn: conditions %+v", cv.Status.Conditions)
	}
	e.WaitEvents("audit", map[string]int{controller.ReasonSignatureAudit: 1})

	cv.Spec.Policy.Verify.Mode = cvv1.VerifyEnforce
	_, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Update(e.Ctx, cv, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	// kwok keeps pods of images containing "unready" in ImagePullBackOff.
	bad := s.push("audit", "v2-unready", s.signedBy(s.key))
	cv = e.WaitStatus("audit", cvv1.StatusFailed, bad, 60*time.Second)
	if got := e.DeploymentImage("audit"); got != gen.Pinned(repo, "v2-unready", bad) {
		t.Errorf("rolled back to an unsigned image: %s", got)
	}
	if records := e.History("audit"); len(records) == 0 || records[0].Outcome != history.OutcomeFailed ||
		!strings.Contains(records[0].Reason, "not rolled back") {
		t.Errorf("history should show the refused rollback: %+v", records)
	}
}

// conditionHas reports whether cv has condType with status and reason; a
// refused or audited image has Verified False, which e2eenv.ConditionIs
// (True only) does not match.
func conditionHas(cv *cvv1.ContainerVersion, condType string, status metav1.ConditionStatus, reason string) bool {
	c := findCondition(cv, condType)
	return c != nil && c.Status == status && c.Reason == reason
}

func findCondition(cv *cvv1.ContainerVersion, condType string) *metav1.Condition {
	for i := range cv.Status.Conditions {
		if cv.Status.Conditions[i].Type == condType {
			return &cv.Status.Conditions[i]
		}
	}
	return nil
}

// TestTagMovesCheckTheTargetPolicy: `cr tags add` and `promote` do not
// move env-prod onto an image the CV following it would refuse, unless
// --force; the CVs are found through the kubeconfig, or named by --cv.
func TestTagMovesCheckTheTargetPolicy(t *testing.T) {
	s := newSignedEnv(t)
	e := s.e
	kubeconfig := controlplane.Shared().KubeconfigPath()
	repo := s.app("web") // follows env-prod, trusts only s.key
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "staging", "staging", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "staging", repo, func(spec *cvv1.ContainerVersionSpec) { spec.Tag = "env-staging" }))
	unsigned := s.reg.MustPush(t, "team/web", "v1", "env-staging")
	e.WaitStatus("staging", cvv1.StatusSuccess, unsigned, 60*time.Second)

	tagsAdd := []string{"cr", "tags", "add", "--kubeconfig", kubeconfig, "--insecure", "--repo", repo, "--version", "v1", "--tags", "env-prod"}
	promote := []string{"promote", "--kubeconfig", kubeconfig, "--insecure", "--from", e.NS + "/staging", "--to", e.NS + "/web"}
	// Each command speaks of what it was asked to do: a CI log of `cr tags
	// add` says the tag move was refused, not a promotion.
	for _, tc := range []struct {
		args           []string
		wording, never string
	}{
		{tagsAdd, "tag move refused: env-prod stays where it is: CV " + e.NS + "/web", "promotion"},
		{append(tagsAdd, "--cv", e.NS+"/web"), "tag move refused: env-prod stays where it is", "promotion"},
		{promote, "promotion refused", "tag move"},
	} {
		out, err := e2eenv.RunCLI(tc.args...)
		if err == nil || !strings.Contains(err.Error(), verify.ReasonUnsigned) || !strings.Contains(err.Error(), "--force") ||
			!strings.Contains(err.Error(), tc.wording) || strings.Contains(err.Error(), tc.never) {
			t.Errorf("%s: want a refusal naming Unsigned and --force, worded %q, never %q; got %v\n%s", tc.args[0], tc.wording, tc.never, err, out)
		}
	}
	if out, err := e2eenv.RunCLI("cr", "tags", "get", "--insecure", "--repo", repo, "--version", "env-prod"); err == nil {
		t.Fatalf("env-prod was moved by a refused command: %s", out)
	}

	// Signed now: promote goes ahead and the CV rolls it out.
	sigstoretest.PushSignatures(t, repo, unsigned, s.key.Sign(t, repo, unsigned))
	if out, err := e2eenv.RunCLI(promote...); err != nil {
		t.Fatalf("promote of a signed image: %v\n%s", err, out)
	}
	e.WaitStatus("web", cvv1.StatusSuccess, unsigned, 60*time.Second)

	// --force moves the tag anyway; the controller still refuses the image.
	v2 := s.reg.MustPush(t, "team/web", "v2")
	forced := append(append([]string{}, tagsAdd...), "--force")
	forced[9] = "v2" // --version
	if out, err := e2eenv.RunCLI(forced...); err != nil {
		t.Fatalf("cr tags add --force: %v\n%s", err, out)
	}
	s.waitRefused("web", v2, verify.ReasonUnsigned)
}
