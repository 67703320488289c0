// Package syncer decides when each ContainerVersion's registry tag is checked
// and what a freshly resolved image means for it. Everything here is pure:
// the controller owns the clock, the queue and the API calls.
package syncer

import (
	"hash/fnv"
	"time"
)

// NextPoll returns when a CV should next ask the registry where its tag points.
//
// A CV that was never polled is polled now. Otherwise the next poll is one
// interval after the last; when that moment has passed (the controller was
// down, or just started and only knows the persisted lastPolled), the overdue
// poll is spread over one interval by jitter in [0,1) so a restart with
// thousands of CVs does not hit the registry all at once.
func NextPoll(lastPoll time.Time, interval time.Duration, now time.Time, jitter float64) time.Time {
	if lastPoll.IsZero() {
		return now
	}
	next := lastPoll.Add(interval)
	if !next.Before(now) {
		return next
	}
	return now.Add(time.Duration(jitter * float64(interval)))
}

// Jitter maps a key to a stable fraction in [0,1), so the spread of overdue
// polls is deterministic per CV (testable, and stable across restarts).
func Jitter(key string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return float64(h.Sum64()>>11) / float64(uint64(1)<<53)
}

// ShouldPersistLastPolled says whether a successful poll at now must be
// written to status.lastPolled. Writing every poll would cost one API write
// per CV per interval; writing at least twice per liveness window keeps
// `cr sync status` and restart scheduling accurate at a fraction of that.
func ShouldPersistLastPolled(persisted time.Time, now time.Time, interval, liveness time.Duration) bool {
	if persisted.IsZero() {
		return true
	}
	every := liveness / 2
	if every < interval {
		every = interval
	}
	return now.Sub(persisted) >= every
}
