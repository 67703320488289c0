package dora

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/pkg/history"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func rec(at time.Duration, outcome string, seconds float64, edit ...func(*history.Record)) history.Record {
	r := history.Record{Time: t0.Add(at), Outcome: outcome, DurationSeconds: seconds, Trigger: history.TriggerPoll}
	for _, f := range edit {
		f(&r)
	}
	return r
}

// TestFigures checks every metric on histories with known answers.
func TestFigures(t *testing.T) {
	h := time.Hour
	// A week of one service: 6 successes, 2 failures (one rolled back), a
	// drift repair and a promotion intent that do not count.
	week := []history.Record{
		rec(-2*h, history.OutcomeSuccess, 30), // before the window: ignored
		rec(1*h, history.OutcomeSuccess, 60),
		rec(10*h, history.OutcomeSuccess, 120),
		rec(20*h, history.OutcomeFailed, 300),
		rec(20*h+30*time.Minute, history.OutcomeRolledBack, 90),
		rec(21*h, history.OutcomeSuccess, 240), // restores after 1 h
		rec(30*h, history.OutcomeSuccess, 30, func(r *history.Record) { r.Trigger = history.TriggerDrift }),
		rec(40*h, history.OutcomeSuccess, 180),
		rec(50*h, "", 0, func(r *history.Record) { r.Action = history.ActionPromote }),
		rec(100*h, history.OutcomeSuccess, 600),
		rec(150*h, history.OutcomeSuccess, 90),
	}
	flaky := []history.Record{
		rec(5*h, history.OutcomeAborted, 10),
		rec(7*h, history.OutcomeSuccess, 50), // restores after 2 h
		rec(160*h, history.OutcomeFailed, 20),
		rec(170*h, history.OutcomeSuccess, 70), // after the window: restores after 10 h, not counted
	}
	window := 7 * 24 * h
	for _, tc := range []struct {
		name string
		s    Samples
		want Figures
	}{
		{"one service over a week", FromRecords(week, t0, t0.Add(window)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 6, Failures: 2, DeploymentsPerDay: 6.0 / 7,
			LeadTimeSeconds: 150, ChangeFailureRate: 0.25, TimeToRestoreSeconds: 3600, Restores: 1}},
		{"a flaky service, restore measured past the window", FromRecords(flaky, t0, t0.Add(165*h)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 1, Failures: 2, DeploymentsPerDay: 1.0 / 7,
			LeadTimeSeconds: 50, ChangeFailureRate: 2.0 / 3, TimeToRestoreSeconds: 6 * 3600, Restores: 2}},
		{"a namespace pools both", Merge(FromRecords(week, t0, t0.Add(window)), FromRecords(flaky, t0, t0.Add(165*h))), Figures{
			WindowSeconds: window.Seconds(), Deployments: 7, Failures: 4, DeploymentsPerDay: 1,
			LeadTimeSeconds: 120, ChangeFailureRate: 4.0 / 11, TimeToRestoreSeconds: 7200, Restores: 3}},
		{"nothing", FromRecords(nil, t0, t0.Add(window)), Figures{WindowSeconds: window.Seconds()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.s.Figures(window)); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
		})
	}
}
