package verify_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/test/localregistry"
	"cvmanager.dev/cvmanager/test/sigstoretest"
)

const (
	issuer  = "https://token.actions.example.com"
	subject = "https://github.example.com/team/app/.github/workflows/release.yml@refs/heads/main"
)

type fixture struct {
	reg      *localregistry.Registry
	repo     string
	trusted  *sigstoretest.Key
	ca       *sigstoretest.CA
	verifier *verify.Verifier
	clock    *clocktesting.FakeClock
}

func newFixture(t *testing.T) *fixture {
	reg := localregistry.StartForTest(t)
	clk := clocktesting.NewFakeClock(time.Now())
	oci := registry.NewOCI(registry.OCIOptions{InsecureHosts: []string{reg.Host}})
	return &fixture{reg: reg, repo: reg.Repo("team/app"), trusted: sigstoretest.NewKey(t),
		ca: sigstoretest.NewCA(t), verifier: verify.New(oci, clk), clock: clk}
}

func (f *fixture) push(t *testing.T, tag string) string {
	t.Helper()
	digest, err := f.reg.Push("team/app", tag)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

func (f *fixture) keyPolicy() verify.Policy {
	return verify.Policy{Keys: [][]byte{f.trusted.PublicPEM()}}
}

func (f *fixture) keylessPolicy(t *testing.T, re string) verify.Policy {
	return verify.Policy{Identities: []verify.Identity{{Issuer: issuer, SubjectRegExp: re}}, TrustedRoot: f.ca.TrustedRootJSON(t)}
}

// TestVerifyReasons signs images in a real registry as cosign publishes
// them and checks that each way of failing has its own reason.
func TestVerifyReasons(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		policy func(t *testing.T) verify.Policy
		// sign publishes signatures for digest (other is another image).
		sign       func(t *testing.T, digest, other string)
		wantReason string
		wantSigner string
	}{
		{name: "signed with the trusted key", policy: func(*testing.T) verify.Policy { return f.keyPolicy() },
			sign: func(t *testing.T, d, _ string) {
				sigstoretest.PushSignatures(t, f.repo, d, f.trusted.Sign(t, f.repo, d))
			}, wantReason: verify.ReasonVerified, wantSigner: "key "},
		{name: "unsigned", policy: func(*testing.T) verify.Policy { return f.keyPolicy() },
			sign: func(*testing.T, string, string) {}, wantReason: verify.ReasonUnsigned},
		{name: "signed with another key", policy: func(*testing.T) verify.Policy { return f.keyPolicy() },
			sign: func(t *testing.T, d, _ string) {
				sigstoretest.PushSignatures(t, f.repo, d, sigstoretest.NewKey(t).Sign(t, f.repo, d))
			}, wantReason: verify.ReasonWrongKey},
		{name: "a valid signature over another digest", policy: func(*testing.T) verify.Policy { return f.keyPolicy() },
			sign: func(t *testing.T, d, other string) {
				sigstoretest.PushSignatures(t, f.repo, d, f.trusted.Sign(t, f.repo, other))
			}, wantReason: verify.ReasonDigestMismatch},
		{name: "payload altered after keyless signing", policy: func(t *testing.T) verify.Policy { return f.keylessPolicy(t, ".*") },
			sign: func(t *testing.T, d, other string) {
				s := f.ca.Sign(t, subject, issuer, f.repo, other)
				s.Payload = sigstoretest.Payload(t, f.repo, d) // the attacker points it at this image
				sigstoretest.PushSignatures(t, f.repo, d, s)
			}, wantReason: verify.ReasonTamperedSignature},
		{name: "keyless identity matches", policy: func(t *testing.T) verify.Policy {
			return f.keylessPolicy(t, `https://github\.example\.com/team/app/.*`)
		},
			sign: func(t *testing.T, d, _ string) {
				sigstoretest.PushSignatures(t, f.repo, d, f.ca.Sign(t, subject, issuer, f.repo, d))
			}, wantReason: verify.ReasonVerified, wantSigner: subject + " (" + issuer + ")"},
		{name: "keyless identity does not match", policy: func(t *testing.T) verify.Policy {
			return f.keylessPolicy(t, `https://github\.example\.com/other/.*`)
		},
			sign: func(t *testing.T, d, _ string) {
				sigstoretest.PushSignatures(t, f.repo, d, f.ca.Sign(t, subject, issuer, f.repo, d))
			}, wantReason: verify.ReasonIdentityMismatch},
		{name: "keyless from an untrusted CA", policy: func(t *testing.T) verify.Policy { return f.keylessPolicy(t, ".*") },
			sign: func(t *testing.T, d, _ string) {
				sigstoretest.PushSignatures(t, f.repo, d, sigstoretest.NewCA(t).Sign(t, subject, issuer, f.repo, d))
			}, wantReason: verify.ReasonWrongKey},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			digest := f.push(t, "v"+string(rune('a'+i)))
			other := f.push(t, "other"+string(rune('a'+i)))
			tc.sign(t, digest, other)
			got, err := f.verifier.Verify(context.Background(), registry.Repo{Name: f.repo}, digest, tc.policy(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantReason, got.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s\nmessage: %s", diff, got.Message)
			}
			if got.Verified != (tc.wantReason == verify.ReasonVerified) || !strings.HasPrefix(got.Signer, tc.wantSigner) {
				t.Errorf("got %+v, want verified=%v signer %q…", got, tc.wantReason == verify.ReasonVerified, tc.wantSigner)
			}
		})
	}
}

// TestVerifyBundles covers Sigstore bundles attached as OCI referrers.
func TestVerifyBundles(t *testing.T) {
	f := newFixture(t)
	repo := registry.Repo{Name: f.repo}
	cases := []struct {
		name       string
		tamper     func([]byte) []byte
		ownKey     bool
		wantReason string
	}{
		{name: "bundle signed with the trusted key", ownKey: true, wantReason: verify.ReasonVerified},
		{name: "bundle signed with another key", wantReason: verify.ReasonWrongKey},
		{name: "bundle whose signature was altered", ownKey: true, tamper: alterSignature(t), wantReason: verify.ReasonTamperedSignature},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			digest := f.push(t, "b"+string(rune('a'+i)))
			pub := sigstoretest.PushBundle(t, f.repo, digest, tc.tamper)
			policy := f.keyPolicy()
			if tc.ownKey {
				policy = verify.Policy{Keys: [][]byte{pub}}
			}
			got, err := f.verifier.Verify(context.Background(), repo, digest, policy)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantReason, got.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s\nmessage: %s", diff, got.Message)
			}
		})
	}
}

// alterSignature flips the bundle's message signature.
func alterSignature(t *testing.T) func([]byte) []byte {
	return func(body []byte) []byte {
		var b map[string]any
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		ms := b["messageSignature"].(map[string]any)
		sig, _ := base64.StdEncoding.DecodeString(ms["signature"].(string))
		sig[len(sig)-3] ^= 0x01
		ms["signature"] = base64.StdEncoding.EncodeToString(sig)
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestVerifyRequestCounts: a new digest costs the tag-scheme requests once;
// the same digest again costs nothing; a refusal is asked again only after
// NegativeTTL, so a late signature is found.
func TestVerifyRequestCounts(t *testing.T) {
	f := newFixture(t)
	repo := registry.Repo{Name: f.repo}
	digest := f.push(t, "v1")
	sigstoretest.PushSignatures(t, f.repo, digest, f.trusted.Sign(t, f.repo, digest))
	unsigned := f.push(t, "v2")
	count := func(fn func()) int64 {
		before := f.reg.Requests()
		fn()
		return f.reg.Requests() - before
	}
	check := func(d string, wantVerified bool) {
		t.Helper()
		r, err := f.verifier.Verify(context.Background(), repo, d, f.keyPolicy())
		if err != nil || r.Verified != wantVerified {
			t.Fatalf("Verify(%s) = %+v, %v; want verified=%v", d, r, err, wantVerified)
		}
	}
	got := map[string]int64{
		"signed, first":    count(func() { check(digest, true) }),
		"signed, again":    count(func() { check(digest, true) }),
		"unsigned, first":  count(func() { check(unsigned, false) }),
		"unsigned, cached": count(func() { check(unsigned, false) }),
	}
	sigstoretest.PushSignatures(t, f.repo, unsigned, f.trusted.Sign(t, f.repo, unsigned))
	f.clock.Step(f.verifier.NegativeTTL)
	got["late signature"] = count(func() { check(unsigned, true) })
	t.Logf("registry requests: %v", got)
	want := map[string]int64{"signed, first": 2, "signed, again": 0, "unsigned, cached": 0, "late signature": 2}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %d requests, want %d", k, got[k], w)
		}
	}
	if u := got["unsigned, first"]; u < 2 || u > 3 {
		t.Errorf("unsigned, first: %d requests, want 2 or 3", u)
	}
}
