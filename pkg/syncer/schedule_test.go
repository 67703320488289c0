package syncer

import (
	"testing"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

func TestNextPoll(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	minute := time.Minute
	cases := []struct {
		name     string
		lastPoll time.Time
		jitter   float64
		want     time.Time
	}{
		{"never polled: now", time.Time{}, 0.5, now},
		{"polled recently: one interval after", now.Add(-20 * time.Second), 0.5, now.Add(40 * time.Second)},
		{"due exactly now", now.Add(-minute), 0.9, now},
		{"overdue: spread by jitter", now.Add(-10 * minute), 0.25, now.Add(15 * time.Second)},
		{"overdue with zero jitter: now", now.Add(-10 * minute), 0, now},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextPoll(tc.lastPoll, minute, now, tc.jitter); !got.Equal(tc.want) {
				t.Errorf("NextPoll = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJitterIsStableAndSpread(t *testing.T) {
	if Jitter("ns/a") != Jitter("ns/a") {
		t.Fatal("jitter not stable for the same key")
	}
	// 1,000 keys must spread over the interval: every tenth has members.
	var buckets [10]int
	for i := 0; i < 1000; i++ {
		j := Jitter("ns/cv-" + time.Duration(i).String())
		if j < 0 || j >= 1 {
			t.Fatalf("jitter %v outside [0,1)", j)
		}
		buckets[int(j*10)]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Errorf("bucket %d has %d of 1000 keys: jitter is not spread", i, n)
		}
	}
}

func TestShouldPersistLastPolled(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		persisted time.Time
		interval  time.Duration
		liveness  time.Duration
		atLeast   time.Duration
		want      bool
	}{
		{"never persisted", time.Time{}, time.Minute, 10 * time.Minute, 0, true},
		{"never persisted, controller period", time.Time{}, time.Minute, 10 * time.Minute, 15 * time.Minute, true},
		{"persisted recently", now.Add(-time.Minute), time.Minute, 10 * time.Minute, 0, false},
		{"half the liveness window passed", now.Add(-5 * time.Minute), time.Minute, 10 * time.Minute, 0, true},
		{"interval longer than half liveness", now.Add(-6 * time.Minute), 10 * time.Minute, 10 * time.Minute, 0, false},
		{"controller period not yet passed", now.Add(-14 * time.Minute), time.Minute, 10 * time.Minute, 15 * time.Minute, false},
		{"controller period passed", now.Add(-15 * time.Minute), time.Minute, 10 * time.Minute, 15 * time.Minute, true},
		{"half liveness longer than the controller period", now.Add(-20 * time.Minute), time.Minute, time.Hour, 15 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShouldPersistLastPolled(tc.persisted, now, tc.interval, tc.liveness, tc.atLeast); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	const a, b = "sha256:aaa", "sha256:bbb"
	cases := []struct {
		name   string
		status cvv1.ContainerVersionStatus
		digest string
		want   Action
	}{
		{"first sight", cvv1.ContainerVersionStatus{}, a, StartRollout},
		{"steady state", cvv1.ContainerVersionStatus{CurrDigest: a, CurrStatus: cvv1.StatusSuccess}, a, Nothing},
		{"tag moved", cvv1.ContainerVersionStatus{CurrDigest: a, CurrStatus: cvv1.StatusSuccess}, b, StartRollout},
		{"failed version not retried", cvv1.ContainerVersionStatus{CurrDigest: b, CurrStatus: cvv1.StatusFailed, FailedDigest: b}, b, SkipFailed},
		{"newer version after a failure", cvv1.ContainerVersionStatus{CurrDigest: b, CurrStatus: cvv1.StatusFailed, FailedDigest: b}, a, StartRollout},
		{"rollout under way", cvv1.ContainerVersionStatus{Rollout: &cvv1.RolloutStatus{Digest: a}}, b, Nothing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(&tc.status, tc.digest); got != tc.want {
				t.Errorf("Decide = %v, want %v", got, tc.want)
			}
		})
	}
}
