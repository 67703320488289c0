package maturity

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	withMinAge := func(d time.Duration, edit ...func(*cvv1.ContainerVersionStatus)) *cvv1.ContainerVersion {
		cv := gen.CV("ns", "web", gen.WithSpec(func(s *cvv1.ContainerVersionSpec) {
			s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: d}}
		}))
		for _, e := range edit {
			e(&cv.Status)
		}
		return cv
	}
	heldSince := func(until time.Time) func(*cvv1.ContainerVersionStatus) {
		return func(st *cvv1.ContainerVersionStatus) {
			u := metav1.NewTime(until)
			st.AvailableDigest, st.HeldUntil = "sha256:b", &u
		}
	}
	tests := []struct {
		name      string
		cv        *cvv1.ContainerVersion
		created   string
		known     bool
		wantOK    bool
		wantUntil time.Time
		wantIn    string
	}{
		{"no policy", gen.CV("ns", "web"), "", true, true, time.Time{}, ""},
		{"built two days ago", withMinAge(24 * time.Hour), "2026-12-05T12:00:00Z", true, true, now.Add(-24 * time.Hour), ""},
		{"built an hour ago", withMinAge(24 * time.Hour), "2026-12-07T11:00:00Z", true, false, now.Add(23 * time.Hour), "built 2026-12-07T11:00:00Z"},
		{"no build time, first seen now", withMinAge(time.Hour), "", true, false, now.Add(time.Hour), "first seen 2026-12-07T12:00:00Z"},
		{"provenance pending: first sighting for now", withMinAge(time.Hour), "2026-12-01T00:00:00Z", false, false, now.Add(time.Hour), "first seen"},
		{"first sighting survives a restart through heldUntil", withMinAge(time.Hour, heldSince(now.Add(10*time.Minute))), "", true, false,
			now.Add(10 * time.Minute), "first seen 2026-12-07T11:10:00Z"},
		{"released at heldUntil", withMinAge(time.Hour, heldSince(now)), "", true, true, now, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Check(tt.cv, "sha256:b", tt.created, tt.known, now)
			if v.Allowed != tt.wantOK || (!tt.wantUntil.IsZero() && !v.Until.Equal(tt.wantUntil)) {
				t.Errorf("Check = %+v, want allowed %v until %v", v, tt.wantOK, tt.wantUntil)
			}
			if !v.Allowed && (v.Reason != cvv1.ReasonMinAge || !strings.Contains(v.Message, tt.wantIn)) {
				t.Errorf("held with %q %q, want MinAge naming %q", v.Reason, v.Message, tt.wantIn)
			}
		})
	}
}
