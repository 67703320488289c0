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

// built sets the image's build time (provenance created) to at.
func built(at time.Duration) func(*history.Record) {
	return func(r *history.Record) {
		r.Provenance = &history.Provenance{Created: t0.Add(at).Format(time.RFC3339)}
	}
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
		rec(20*h, history.OutcomeFailed, 300), // down from its start, 20 h - 5 min
		// the next version fails too and is rolled back to the last good
		// one: service restored at its end, 35 min after the incident began
		rec(20*h+30*time.Minute, history.OutcomeRolledBack, 90),
		rec(21*h, history.OutcomeSuccess, 240), // nothing left to restore
		rec(30*h, history.OutcomeSuccess, 30, func(r *history.Record) { r.Trigger = history.TriggerDrift }),
		rec(40*h, history.OutcomeSuccess, 180),
		rec(50*h, "", 0, func(r *history.Record) { r.Action = history.ActionPromote }),
		rec(100*h, history.OutcomeSuccess, 600),
		rec(150*h, history.OutcomeSuccess, 90),
	}
	flaky := []history.Record{
		rec(5*h, history.OutcomeAborted, 10),
		rec(7*h, history.OutcomeSuccess, 50), // restores 2 h 10 s after the aborted rollout started
		rec(160*h, history.OutcomeFailed, 20),
		rec(170*h, history.OutcomeSuccess, 70), // after the window: restores after 10 h 20 s, counted (the failure is inside)
	}
	// An automatic rollback restores service at its own end: a bad version
	// rolled out for 4 min, failed its health check and was rolled back
	// 1 min later; the next success a day later is not the restore.
	rolledBack := []history.Record{
		rec(1*h, history.OutcomeSuccess, 60),
		rec(2*h, history.OutcomeRolledBack, 300),
		rec(26*h, history.OutcomeSuccess, 60),
	}
	// Lead time runs from the image's build (provenance created): built
	// 2 h, 30 min and 10 min before the rollouts ended; one image states no
	// build time and one a build time after its rollout, so neither makes
	// up a lead time, but both count as deployments and deploy durations.
	fromBuild := []history.Record{
		rec(10*h, history.OutcomeSuccess, 60, built(8*h)),
		rec(20*h, history.OutcomeSuccess, 120, built(20*h-30*time.Minute)),
		rec(30*h, history.OutcomeSuccess, 30, built(30*h-10*time.Minute)),
		rec(40*h, history.OutcomeSuccess, 90),
		rec(50*h, history.OutcomeSuccess, 45, built(51*h)),
	}
	window := 7 * 24 * h
	for _, tc := range []struct {
		name string
		s    Samples
		want Figures
	}{
		{"one service over a week", FromRecords(week, t0, t0.Add(window)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 6, Failures: 2, DeploymentsPerDay: 6.0 / 7,
			DeployDurationSeconds: 150, ChangeFailureRate: 0.25, TimeToRestoreSeconds: 35 * 60, Restores: 1}},
		{"a flaky service, restore measured past the window", FromRecords(flaky, t0, t0.Add(165*h)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 1, Failures: 2, DeploymentsPerDay: 1.0 / 7,
			DeployDurationSeconds: 50, ChangeFailureRate: 2.0 / 3, TimeToRestoreSeconds: (2*3600 + 10 + 10*3600 + 20) / 2, Restores: 2}},
		{"a namespace pools both", Merge(FromRecords(week, t0, t0.Add(window)), FromRecords(flaky, t0, t0.Add(165*h))), Figures{
			WindowSeconds: window.Seconds(), Deployments: 7, Failures: 4, DeploymentsPerDay: 1,
			DeployDurationSeconds: 120, ChangeFailureRate: 4.0 / 11, TimeToRestoreSeconds: 2*3600 + 10, Restores: 3}},
		{"an automatic rollback restores at its end", FromRecords(rolledBack, t0, t0.Add(window)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 2, Failures: 1, DeploymentsPerDay: 2.0 / 7,
			DeployDurationSeconds: 60, ChangeFailureRate: 1.0 / 3, TimeToRestoreSeconds: 300, Restores: 1}},
		{"lead time from the image's build time", FromRecords(fromBuild, t0, t0.Add(window)), Figures{
			WindowSeconds: window.Seconds(), Deployments: 5, DeploymentsPerDay: 5.0 / 7,
			LeadTimeSeconds: 30 * 60, LeadTimes: 3, DeployDurationSeconds: 60}},
		{"nothing", FromRecords(nil, t0, t0.Add(window)), Figures{WindowSeconds: window.Seconds()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.s.Figures(window)); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
		})
	}
}
