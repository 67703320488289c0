package maturity

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// withMinAge is the CV web under spec.policy.minAge d, its status edited.
func withMinAge(d time.Duration, edit ...func(*cvv1.ContainerVersionStatus)) *cvv1.ContainerVersion {
	cv := gen.CV("ns", "web", gen.WithSpec(func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: d}}
	}))
	for _, e := range edit {
		e(&cv.Status)
	}
	return cv
}

// available shows digest as held, first seen at since (zero: not recorded,
// as a cvmanager before status.availableSince wrote it).
func available(digest string, since time.Time) func(*cvv1.ContainerVersionStatus) {
	return func(st *cvv1.ContainerVersionStatus) {
		st.AvailableDigest = digest
		if !since.IsZero() {
			st.AvailableSince = &metav1.Time{Time: since}
		}
	}
}

// heldBy is a ReleaseBlocked hold for reason until the given time.
func heldBy(reason string, until time.Time) func(*cvv1.ContainerVersionStatus) {
	return func(st *cvv1.ContainerVersionStatus) {
		st.HeldUntil = &metav1.Time{Time: until}
		st.Conditions = append(st.Conditions, metav1.Condition{Type: cvv1.ConditionReleaseBlocked,
			Status: metav1.ConditionTrue, Reason: reason, Message: "held"})
	}
}

func TestCheck(t *testing.T) {
	const b = "sha256:b"
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
		{"build time wins over the recorded sighting", withMinAge(time.Hour, available(b, now.Add(-2*time.Hour))),
			"2026-12-07T11:30:00Z", true, false, now.Add(30 * time.Minute), "built 2026-12-07T11:30:00Z"},
		{"first sighting survives a restart through availableSince", withMinAge(time.Hour, available(b, now.Add(-50*time.Minute)),
			heldBy(cvv1.ReasonMinAge, now.Add(10*time.Minute))), "", true, false, now.Add(10 * time.Minute), "first seen 2026-12-07T11:10:00Z"},
		{"released minAge after the first sighting", withMinAge(time.Hour, available(b, now.Add(-time.Hour))), "", true, true, now, ""},
		{"a follower's soak does not date the first sighting", withMinAge(time.Hour, available(b, now.Add(-10*time.Minute)),
			heldBy(cvv1.ReasonSoaking, now)), "", true, false, now.Add(50 * time.Minute), "first seen 2026-12-07T11:50:00Z"},
		{"a soak hold without availableSince: first seen now", withMinAge(time.Hour, available(b, time.Time{}),
			heldBy(cvv1.ReasonSoaking, now)), "", true, false, now.Add(time.Hour), "first seen 2026-12-07T12:00:00Z"},
		{"minAge changed while held keeps the first sighting", withMinAge(2*time.Hour, available(b, now.Add(-30*time.Minute)),
			heldBy(cvv1.ReasonMinAge, now.Add(30*time.Minute))), "", true, false, now.Add(90 * time.Minute), "first seen 2026-12-07T11:30:00Z"},
		{"a new digest resets the first sighting", withMinAge(time.Hour, available("sha256:a", now.Add(-2*time.Hour)),
			heldBy(cvv1.ReasonMinAge, now.Add(-time.Hour))), "", true, false, now.Add(time.Hour), "first seen 2026-12-07T12:00:00Z"},
		{"a minAge hold from before availableSince: heldUntil - minAge", withMinAge(time.Hour, available(b, time.Time{}),
			heldBy(cvv1.ReasonMinAge, now.Add(10*time.Minute))), "", true, false, now.Add(10 * time.Minute), "first seen 2026-12-07T11:10:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Check(tt.cv, b, tt.created, tt.known, now)
			if v.Allowed != tt.wantOK || (!tt.wantUntil.IsZero() && !v.Until.Equal(tt.wantUntil)) {
				t.Errorf("Check = %+v, want allowed %v until %v", v, tt.wantOK, tt.wantUntil)
			}
			if !v.Allowed && (v.Reason != cvv1.ReasonMinAge || !strings.Contains(v.Message, tt.wantIn)) {
				t.Errorf("held with %q %q, want MinAge naming %q", v.Reason, v.Message, tt.wantIn)
			}
		})
	}
}

// TestFirstSeen: what status says of a digest's first sighting, including
// the one inference kept for holds written before status.availableSince.
func TestFirstSeen(t *testing.T) {
	const b = "sha256:b"
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name   string
		cv     *cvv1.ContainerVersion
		digest string
		want   *time.Time
	}{
		{"nothing held", withMinAge(time.Hour), b, nil},
		{"no digest", withMinAge(time.Hour, available(b, now)), "", nil},
		{"recorded", withMinAge(time.Hour, available(b, now.Add(-time.Minute))), b, at(-time.Minute)},
		{"recorded, whatever heldUntil says", withMinAge(time.Hour, available(b, now.Add(-time.Minute)), heldBy(cvv1.ReasonMinAge, now.Add(3*time.Hour))), b, at(-time.Minute)},
		{"another digest is held", withMinAge(time.Hour, available("sha256:a", now.Add(-time.Minute))), b, nil},
		{"legacy minAge hold", withMinAge(time.Hour, available(b, time.Time{}), heldBy(cvv1.ReasonMinAge, now.Add(time.Minute))), b, at(-59 * time.Minute)},
		{"legacy soak hold says nothing", withMinAge(time.Hour, available(b, time.Time{}), heldBy(cvv1.ReasonSoaking, now.Add(time.Minute))), b, nil},
		{"legacy hold, minAge since removed", withMinAge(0, available(b, time.Time{}), heldBy(cvv1.ReasonMinAge, now.Add(time.Minute))), b, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FirstSeen(tt.cv, tt.digest)
			if (got == nil) != (tt.want == nil) || got != nil && !got.Equal(*tt.want) {
				t.Errorf("FirstSeen = %v, want %v", got, tt.want)
			}
		})
	}
}
