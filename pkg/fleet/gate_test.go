package fleet

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// source is a CV that has run v2 with Success since `since` ago.
func source(since time.Duration, edits ...func(*cvv1.ContainerVersionStatus)) *cvv1.ContainerVersion {
	cv := gen.CV("staging", "web")
	t := metav1.NewTime(now.Add(-since))
	cv.Status = cvv1.ContainerVersionStatus{CurrVersion: "v2", CurrDigest: "sha256:b", CurrStatus: cvv1.StatusSuccess,
		CurrStatusTime: &t, SuccessVersion: "v2", SuccessDigest: "sha256:b"}
	for _, e := range edits {
		e(&cv.Status)
	}
	return cv
}

func TestGate(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name       string
		src        *cvv1.ContainerVersion
		opts       GateOptions
		wantOpen   bool
		wantReason string
		wantUntil  time.Time
	}{
		{"soaked long enough", source(2 * hour), GateOptions{MinSoak: hour}, true, "", now.Add(-hour)},
		{"exactly at the end of the soak", source(hour), GateOptions{MinSoak: hour}, true, "", now},
		{"still soaking", source(10 * time.Minute), GateOptions{MinSoak: hour}, false, cvv1.ReasonSoaking, now.Add(50 * time.Minute)},
		{"no soak asked", source(0), GateOptions{}, true, "", now},
		{"unreachable", nil, GateOptions{}, false, cvv1.ReasonSourceUnreachable, time.Time{}},
		{"never succeeded", source(hour, func(s *cvv1.ContainerVersionStatus) {
			s.SuccessDigest, s.SuccessVersion, s.CurrStatus = "", "", cvv1.StatusProgressing
		}),
			GateOptions{}, false, cvv1.ReasonSourceFailing, time.Time{}},
		{"failing on a newer version", source(hour, func(s *cvv1.ContainerVersionStatus) {
			s.CurrVersion, s.CurrDigest, s.CurrStatus = "v3", "sha256:c", cvv1.StatusFailed
		}),
			GateOptions{}, false, cvv1.ReasonSourceFailing, time.Time{}},
		{"rolling out a newer version: soak restarts", source(hour, func(s *cvv1.ContainerVersionStatus) {
			s.CurrVersion, s.CurrDigest, s.CurrStatus = "v3", "sha256:c", cvv1.StatusProgressing
		}),
			GateOptions{}, false, cvv1.ReasonSourceFailing, time.Time{}},
		{"its success digest failed since", source(hour, func(s *cvv1.ContainerVersionStatus) { s.FailedDigest = "sha256:b" }),
			GateOptions{}, false, cvv1.ReasonSourceFailing, time.Time{}},
		{"drifted", source(2*hour, func(s *cvv1.ContainerVersionStatus) {
			s.Conditions = []metav1.Condition{{Type: cvv1.ConditionDrifted, Status: metav1.ConditionTrue}}
		}), GateOptions{MinSoak: hour}, false, cvv1.ReasonSourceDrifted, time.Time{}},
		{"drift resolved", source(2*hour, func(s *cvv1.ContainerVersionStatus) {
			s.Conditions = []metav1.Condition{{Type: cvv1.ConditionDrifted, Status: metav1.ConditionFalse}}
		}), GateOptions{MinSoak: hour}, true, "", now.Add(-hour)},
		{"unverified when signatures apply", source(2 * hour), GateOptions{MinSoak: hour, RequireVerified: true}, false, cvv1.ReasonSourceUnverified, time.Time{}},
		{"verified", source(2*hour, func(s *cvv1.ContainerVersionStatus) { s.Signer = "key abc" }), GateOptions{MinSoak: hour, RequireVerified: true}, true, "", now.Add(-hour)},
		{"no status time: cannot tell the soak", source(2*hour, func(s *cvv1.ContainerVersionStatus) { s.CurrStatusTime = nil }), GateOptions{MinSoak: hour}, false, cvv1.ReasonSoaking, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Gate(tt.src, tt.opts, now)
			if v.Open != tt.wantOpen || v.Reason != tt.wantReason || !v.Until.Equal(tt.wantUntil) {
				t.Errorf("Gate = open %v reason %q until %v (%s); want open %v reason %q until %v",
					v.Open, v.Reason, v.Until, v.Message, tt.wantOpen, tt.wantReason, tt.wantUntil)
			}
			if v.Message == "" {
				t.Error("no message")
			}
			if tt.wantOpen && (v.Version != "v2" || v.Digest != "sha256:b") {
				t.Errorf("open on %s %s, want v2 sha256:b", v.Version, v.Digest)
			}
		})
	}
}

// TestGateSoakingMessageIsStable: a soaking source is refused with the
// same message at every read, so the target writes its hold once.
func TestGateSoakingMessageIsStable(t *testing.T) {
	src, opts := source(10*time.Minute), GateOptions{MinSoak: time.Hour}
	first, later := Gate(src, opts, now), Gate(src, opts, now.Add(30*time.Second))
	if first.Reason != cvv1.ReasonSoaking || later.Reason != cvv1.ReasonSoaking || first.Message != later.Message {
		t.Errorf("soaking 30 s apart: %s %q, then %s %q; want Soaking with one message", first.Reason, first.Message, later.Reason, later.Message)
	}
	if want := now.Add(50 * time.Minute).Format(time.RFC3339); !strings.Contains(first.Message, want) {
		t.Errorf("message %q does not say when the version is eligible (%s)", first.Message, want)
	}
}

func target(edits ...func(*cvv1.ContainerVersion)) *cvv1.ContainerVersion {
	cv := gen.CV("prod", "web", gen.WithSpec(func(s *cvv1.ContainerVersionSpec) {
		s.Promotion = &cvv1.PromotionSpec{From: cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: "staging"},
			Namespace: "staging", Name: "web", MinSoakSeconds: ptr.To[int32](3600)}}
	}))
	cv.Status = cvv1.ContainerVersionStatus{CurrVersion: "v1", CurrDigest: "sha256:a", CurrStatus: cvv1.StatusSuccess,
		SuccessVersion: "v1", SuccessDigest: "sha256:a"}
	for _, e := range edits {
		e(cv)
	}
	return cv
}

func TestDecide(t *testing.T) {
	read := metav1.NewTime(now)
	lastRead := metav1.NewTime(now.Add(-time.Hour))
	since := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	until := now.Add(50 * time.Minute)
	tests := []struct {
		name    string
		target  *cvv1.ContainerVersion
		src     *cvv1.ContainerVersion
		readErr error
		want    Decision
	}{
		{name: "no promotion spec: nothing", target: gen.CV("prod", "web"), src: source(2 * time.Hour), want: Decision{}},
		{name: "gate open: promote the source's digest", target: target(), src: source(2 * time.Hour),
			want: Decision{Promote: true, Version: "v2", Digest: "sha256:b",
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}},
		{name: "soaking: held until the soak ends", target: target(), src: source(10 * time.Minute),
			want: Decision{Hold: true, Reason: cvv1.ReasonSoaking, Version: "v2", Digest: "sha256:b", HeldUntil: &until,
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(10 * time.Minute), LastRead: &read}}},
		{name: "already runs it: nothing to do", target: target(func(cv *cvv1.ContainerVersion) { cv.Status.CurrDigest = "sha256:b" }), src: source(2 * time.Hour),
			want: Decision{Version: "v2", Digest: "sha256:b",
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}},
		{name: "rolling it out already: nothing to do", target: target(func(cv *cvv1.ContainerVersion) {
			cv.Status.Rollout = &cvv1.RolloutStatus{Digest: "sha256:b"}
		}), src: source(2 * time.Hour),
			want: Decision{Version: "v2", Digest: "sha256:b",
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}},
		{name: "failed it: not promoted again", target: target(func(cv *cvv1.ContainerVersion) {
			cv.Status.CurrDigest, cv.Status.CurrStatus, cv.Status.FailedDigest = "sha256:b", cvv1.StatusFailed, "sha256:b"
		}), src: source(2 * time.Hour),
			want: Decision{Version: "v2", Digest: "sha256:b",
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}},
		{name: "its failure cleared: promoted again", target: target(func(cv *cvv1.ContainerVersion) {
			cv.Status.CurrDigest, cv.Status.CurrStatus = "sha256:b", cvv1.StatusFailed
		}), src: source(2 * time.Hour),
			want: Decision{Promote: true, Version: "v2", Digest: "sha256:b",
				Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}},
		{name: "unreachable: held, last read kept", target: target(func(cv *cvv1.ContainerVersion) {
			cv.Status.Promotion = &cvv1.PromotionStatus{SourceVersion: "v1", SourceDigest: "sha256:a", LastRead: &lastRead}
		}), readErr: errors.New("connection refused"),
			want: Decision{Hold: true, Reason: cvv1.ReasonSourceUnreachable,
				Status: &cvv1.PromotionStatus{SourceVersion: "v1", SourceDigest: "sha256:a", LastRead: &lastRead}}},
		{name: "other repository: held", target: target(), src: source(2*time.Hour, func(s *cvv1.ContainerVersionStatus) {}),
			want: Decision{}},
	}
	// The last case needs a source of another repository.
	tests[len(tests)-1].src.Spec.ImageRepo = "127.0.0.1:5000/other"
	tests[len(tests)-1].want = Decision{Hold: true, Reason: ReasonSourceOtherRepository,
		Status: &cvv1.PromotionStatus{SourceVersion: "v2", SourceDigest: "sha256:b", SourceSuccessSince: since(2 * time.Hour), LastRead: &read}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.target, tt.src, tt.readErr, false, now)
			if (got.Hold || got.Promote) && got.Message == "" {
				t.Error("no message")
			}
			got.Message = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRESTConfigFromSecretRefusesPluginsAndFiles(t *testing.T) {
	const base = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"%s}}]
users: [{name: u, user: {%s}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	tests := []struct {
		name, cluster, user string
		wantErr             string
	}{
		{"inline token", "", `token: abc`, ""},
		{"exec plugin", "", `exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}`, "exec plugin"},
		{"auth provider", "", `auth-provider: {name: oidc}`, "auth-provider"},
		{"token file", "", `tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token`, "names files"},
		{"client cert file", "", `client-certificate: /etc/x.crt, client-key: /etc/x.key`, "names files"},
		{"CA file", `, certificate-authority: /etc/ca.crt`, `token: abc`, "CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := RESTConfigFromSecret([]byte(fmt.Sprintf(base, tt.cluster, tt.user)))
			if tt.wantErr == "" {
				if err != nil || cfg.BearerToken != "abc" || cfg.Timeout != readTimeout {
					t.Fatalf("got %+v, %v", cfg, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeKubeconfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrUnsafeKubeconfig naming %q", err, tt.wantErr)
			}
		})
	}
}
