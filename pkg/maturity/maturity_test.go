package maturity

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEligible(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name             string
		created, firstAt *time.Time
		minAge           time.Duration
		wantOK           bool
		wantAt           time.Time
	}{
		{"no minAge: at once", at(-time.Minute), nil, 0, true, now},
		{"negative minAge is none", nil, nil, -time.Hour, true, now},
		{"built long ago", at(-48 * time.Hour), at(-time.Minute), 24 * time.Hour, true, now.Add(-24 * time.Hour)},
		{"built just now: held until built+minAge", at(-time.Hour), at(-time.Minute), 24 * time.Hour, false, now.Add(23 * time.Hour)},
		{"exactly at the boundary is eligible", at(-time.Hour), nil, time.Hour, true, now},
		{"build time wins over first sighting", at(-time.Hour), at(-72 * time.Hour), 2 * time.Hour, false, now.Add(time.Hour)},
		{"no build time: first sighting counts", nil, at(-30 * time.Minute), time.Hour, false, now.Add(30 * time.Minute)},
		{"no build time, seen long ago", nil, at(-2 * time.Hour), time.Hour, true, now.Add(-time.Hour)},
		{"neither: held from now", nil, nil, time.Hour, false, now.Add(time.Hour)},
		{"zero build time ignored", &time.Time{}, at(-2 * time.Hour), time.Hour, true, now.Add(-time.Hour)},
		{"build time slightly ahead is believed", at(5 * time.Minute), nil, time.Hour, false, now.Add(65 * time.Minute)},
		{"build time far ahead is ignored", at(10 * 365 * 24 * time.Hour), at(-2 * time.Hour), time.Hour, true, now.Add(-time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, gotAt := Eligible(tt.created, tt.firstAt, tt.minAge, now)
			if ok != tt.wantOK || !gotAt.Equal(tt.wantAt) {
				t.Errorf("Eligible = %v, %v; want %v, %v", ok, gotAt, tt.wantOK, tt.wantAt)
			}
		})
	}
}

// TestEligibleReleasesAtTheStatedTime walks a fake clock across the time
// Eligible names: held one nanosecond before, released at it.
func TestEligibleReleasesAtTheStatedTime(t *testing.T) {
	seen := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	_, at := Eligible(nil, &seen, 90*time.Second, seen)
	if ok, _ := Eligible(nil, &seen, 90*time.Second, at.Add(-time.Nanosecond)); ok {
		t.Fatal("eligible before the stated time")
	}
	if ok, again := Eligible(nil, &seen, 90*time.Second, at); !ok || !again.Equal(at) {
		t.Fatalf("not eligible at the stated time %v (got %v, %v)", at, ok, again)
	}
}

func TestParseCreated(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := ParseCreated("2026-01-02T03:04:05Z"); got == nil || !got.Equal(want) {
		t.Errorf("ParseCreated = %v, want %v", got, want)
	}
	for _, s := range []string{"", "yesterday", "0001-01-01T00:00:00Z"} {
		if got := ParseCreated(s); got != nil {
			t.Errorf("ParseCreated(%q) = %v, want nil", s, got)
		}
	}
	if MinAge(nil) != 0 || MinAge(&metav1.Duration{Duration: time.Hour}) != time.Hour || MinAge(&metav1.Duration{Duration: -1}) != 0 {
		t.Error("MinAge")
	}
}
