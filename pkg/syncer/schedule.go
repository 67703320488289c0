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
// per CV per interval. Twice per liveness window keeps `cr sync status`
// accurate for a standalone syncer; atLeast stretches the period further for
// the controller, whose CVs are not probed through lastPolled (at 10,000 CVs
// the liveness rate alone was 2,000 status writes a minute).
func ShouldPersistLastPolled(persisted time.Time, now time.Time, interval, liveness, atLeast time.Duration) bool {
	if persisted.IsZero() {
		return true
	}
	return now.Sub(persisted) >= max(liveness/2, interval, atLeast)
}
