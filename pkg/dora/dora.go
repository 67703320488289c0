// Package dora computes delivery metrics from rollout history records
// (pkg/history), by DORA's definitions where the records allow it and
// under another name where they do not:
//
//   - deployment frequency: successful rollouts per day (DORA's own);
//   - lead time for changes: DORA runs it from the change (the commit) to
//     running in production. The closest start the records carry is the
//     image's build time (org.opencontainers.image.created, kept in the
//     record's provenance), so the lead time is from the build to the
//     rollout finished, as a median over the rollouts whose image states
//     its build time;
//   - deploy duration: from the rollout's start (cvmanager saw the tag
//     move) to its end, for every successful rollout; it is what the lead
//     time used to be, and is not DORA's lead time;
//   - change failure rate: failed rollouts (Failed, RolledBack, Aborted)
//     over all rollouts (DORA counts changes that degraded service; a
//     failed rollout is the failure the controller sees);
//   - time to restore: from the start of the rollout that failed to the
//     moment service was restored: the end of an automatic rollback (a
//     RolledBack record), else the next successful rollout of the same
//     ContainerVersion; as a median.
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
	// LeadTimes are the lead times (image build → rollout finished) of
	// the successful rollouts whose image states its build time.
	LeadTimes []time.Duration
	// DeployDurations are the durations (rollout start → end) of every
	// successful rollout.
	DeployDurations []time.Duration
	// Restores are the times from a failed rollout's start to service
	// restored (an automatic rollback's end, or the next success).
	Restores []time.Duration
}

// Figures are the DORA metrics over a window. Times are in seconds for
// JSON readers; a figure with no sample is 0 and its count says so.
type Figures struct {
	WindowSeconds     float64 `json:"windowSeconds"`
	Deployments       int     `json:"deployments"`
	Failures          int     `json:"failures"`
	DeploymentsPerDay float64 `json:"deploymentsPerDay"`
	// LeadTimeSeconds is the median lead time from the image's build;
	// LeadTimes counts the rollouts it is taken over (those whose image
	// states its build time), which may be fewer than Deployments.
	LeadTimeSeconds float64 `json:"leadTimeSeconds"`
	LeadTimes       int     `json:"leadTimes"`
	// DeployDurationSeconds is the median rollout duration of the
	// successful rollouts: not a lead time.
	DeployDurationSeconds float64 `json:"deployDurationSeconds"`
	ChangeFailureRate     float64 `json:"changeFailureRate"`
	TimeToRestoreSeconds  float64 `json:"timeToRestoreSeconds"`
	Restores              int     `json:"restores"`
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
// A failure restores when service is restored, even after the window, as
// long as the failure is inside it.
func FromRecords(records []history.Record, from, to time.Time) Samples {
	rs := slices.Clone(records)
	slices.SortStableFunc(rs, func(a, b history.Record) int { return a.Time.Compare(b.Time) })
	var s Samples
	var down time.Time // when the current incident began: the first failed rollout's start
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
					down = start(r)
				}
			}
			if r.Outcome == history.OutcomeRolledBack && !down.IsZero() {
				// The automatic rollback restored the last good version.
				s.Restores = append(s.Restores, r.Time.Sub(down))
				down = time.Time{}
			}
		case r.Outcome == history.OutcomeSuccess:
			if !down.IsZero() {
				s.Restores = append(s.Restores, r.Time.Sub(down))
			}
			down = time.Time{}
			if inWindow {
				s.Successes++
				s.DeployDurations = append(s.DeployDurations, duration(r))
				if lt, ok := LeadTime(r); ok {
					s.LeadTimes = append(s.LeadTimes, lt)
				}
			}
		}
	}
	return s
}

// start is when a rollout began changing workloads: the record's time is
// its end, DurationSeconds its length.
func start(r history.Record) time.Time {
	return r.Time.Add(-duration(r))
}

// duration is a rollout's length, from its start (the tag seen moving) to
// its end: the deploy duration.
func duration(r history.Record) time.Duration {
	return time.Duration(r.DurationSeconds * float64(time.Second))
}

// LeadTime is a finished rollout's lead time for changes: from the image's
// build time (provenance created, RFC 3339) to the rollout's end. ok is
// false when the image states no build time, or one after the rollout
// (a clock that cannot be trusted), so no lead time is made up.
func LeadTime(r history.Record) (time.Duration, bool) {
	if r.Provenance == nil || r.Provenance.Created == "" {
		return 0, false
	}
	built, err := time.Parse(time.RFC3339Nano, r.Provenance.Created)
	if err != nil || built.After(r.Time) {
		return 0, false
	}
	return r.Time.Sub(built), true
}

// Merge pools samples, e.g. every ContainerVersion of a namespace.
func Merge(all ...Samples) Samples {
	var out Samples
	for _, s := range all {
		out.Successes += s.Successes
		out.Failures += s.Failures
		out.LeadTimes = append(out.LeadTimes, s.LeadTimes...)
		out.DeployDurations = append(out.DeployDurations, s.DeployDurations...)
		out.Restores = append(out.Restores, s.Restores...)
	}
	return out
}

// Figures summarises the samples of a window.
func (s Samples) Figures(window time.Duration) Figures {
	f := Figures{WindowSeconds: window.Seconds(), Deployments: s.Successes, Failures: s.Failures, Restores: len(s.Restores),
		LeadTimeSeconds: median(s.LeadTimes).Seconds(), LeadTimes: len(s.LeadTimes),
		DeployDurationSeconds: median(s.DeployDurations).Seconds(), TimeToRestoreSeconds: median(s.Restores).Seconds()}
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
