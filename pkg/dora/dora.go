// Package dora computes the four DORA delivery metrics from rollout
// history records (pkg/history), so a team sees how its delivery does
// without a separate tool:
//
//   - deployment frequency: successful rollouts per day;
//   - lead time: from the change being seen (the tag moved, which starts
//     the rollout) to the rollout finished, as a median;
//   - change failure rate: failed rollouts (Failed, RolledBack, Aborted)
//     over all rollouts;
//   - time to restore: from a failed rollout to the next successful one of
//     the same ContainerVersion, as a median.
//
// Only rollouts that deliver a change count: records of actions (a
// promotion's intent) and rollouts that merely restore the deployed digest
// (drift, a joining workload) are left out. The package is pure: it reads
// records and a time window, and knows nothing of Kubernetes.
package dora

import (
	"slices"
	"time"

	"cvmanager.dev/cvmanager/pkg/history"
)

// Samples are the raw observations of one ContainerVersion (or several,
// merged) in a window; Figures summarises them.
type Samples struct {
	// Successes and Failures count the change-delivering rollouts.
	Successes, Failures int
	// LeadTimes are the lead times of the successful rollouts.
	LeadTimes []time.Duration
	// Restores are the times from a failure to the next success.
	Restores []time.Duration
}

// Figures are the DORA metrics over a window. Times are in seconds for
// JSON readers; a figure with no sample is 0 and its count says so.
type Figures struct {
	WindowSeconds        float64 `json:"windowSeconds"`
	Deployments          int     `json:"deployments"`
	Failures             int     `json:"failures"`
	DeploymentsPerDay    float64 `json:"deploymentsPerDay"`
	LeadTimeSeconds      float64 `json:"leadTimeSeconds"`
	ChangeFailureRate    float64 `json:"changeFailureRate"`
	TimeToRestoreSeconds float64 `json:"timeToRestoreSeconds"`
	Restores             int     `json:"restores"`
}

// counts says whether a record is a rollout that delivers a change.
func counts(r history.Record) bool {
	if r.Action != "" {
		return false
	}
	switch r.Trigger {
	case history.TriggerDrift, history.TriggerJoin:
		return false
	}
	return r.Outcome != "" && r.Outcome != history.OutcomePromoted
}

func failed(r history.Record) bool {
	switch r.Outcome {
	case history.OutcomeFailed, history.OutcomeRolledBack, history.OutcomeAborted:
		return true
	}
	return false
}

// FromRecords collects the samples of one ContainerVersion's records (as
// history.CVHistory returns them, any order) that finished in [from, to).
// A failure restores at the next success, even one after the window, as
// long as the failure is inside it.
func FromRecords(records []history.Record, from, to time.Time) Samples {
	rs := slices.Clone(records)
	slices.SortStableFunc(rs, func(a, b history.Record) int { return a.Time.Compare(b.Time) })
	var s Samples
	var down time.Time // when the current run of failures began
	for _, r := range rs {
		if !counts(r) || r.Time.Before(from) {
			continue
		}
		inWindow := r.Time.Before(to)
		switch {
		case failed(r):
			if inWindow {
				s.Failures++
				if down.IsZero() {
					down = r.Time
				}
			}
		case r.Outcome == history.OutcomeSuccess:
			if !down.IsZero() {
				s.Restores = append(s.Restores, r.Time.Sub(down))
			}
			down = time.Time{}
			if inWindow {
				s.Successes++
				s.LeadTimes = append(s.LeadTimes, leadTime(r))
			}
		}
	}
	return s
}

// leadTime is from the start of the rollout (the tag seen moving) to its
// end: the record's time is the end, DurationSeconds its length.
func leadTime(r history.Record) time.Duration {
	return time.Duration(r.DurationSeconds * float64(time.Second))
}

// Merge pools samples, e.g. every ContainerVersion of a namespace.
func Merge(all ...Samples) Samples {
	var out Samples
	for _, s := range all {
		out.Successes += s.Successes
		out.Failures += s.Failures
		out.LeadTimes = append(out.LeadTimes, s.LeadTimes...)
		out.Restores = append(out.Restores, s.Restores...)
	}
	return out
}

// Figures summarises the samples of a window.
func (s Samples) Figures(window time.Duration) Figures {
	f := Figures{WindowSeconds: window.Seconds(), Deployments: s.Successes, Failures: s.Failures, Restores: len(s.Restores),
		LeadTimeSeconds: median(s.LeadTimes).Seconds(), TimeToRestoreSeconds: median(s.Restores).Seconds()}
	if days := window.Hours() / 24; days > 0 {
		f.DeploymentsPerDay = float64(s.Successes) / days
	}
	if total := s.Successes + s.Failures; total > 0 {
		f.ChangeFailureRate = float64(s.Failures) / float64(total)
	}
	return f
}

// median of ds (the mean of the middle two for an even count); 0 if none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
