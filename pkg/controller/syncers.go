package controller

import (
	"sync"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// syncerState is one CV's in-memory poll schedule. It lives from the first
// sync of the CV until the CV is deleted or suspended.
type syncerState struct {
	key      string
	lastPoll time.Time
	next     time.Time
	interval time.Duration
	// forced holds the trigger name of a requested immediate poll; it is
	// set from other goroutines (trigger API), hence the mutex.
	mu     sync.Mutex
	forced string
	// woken asks for a poll now, scheduled rather than forced: another
	// follower of the repo:tag just saw it move (wakeFollowers).
	woken bool
}

func (c *Controller) syncerFor(key string) *syncerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.syncers[key]
	if !ok {
		s = &syncerState{key: key}
		c.syncers[key] = s
		c.metrics.Syncers.Set(float64(len(c.syncers)))
	}
	return s
}

// existingSyncer is key's state, or nil before its first sync and after
// it stopped (a suspended CV is not brought back to life).
func (c *Controller) existingSyncer(key string) *syncerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncers[key]
}

// stopSyncer forgets a deleted or suspended CV: with no state and no CV, the
// queued timer finds nothing to do and the registry is not asked again.
func (c *Controller) stopSyncer(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.syncers[key]; ok {
		delete(c.syncers, key)
		c.metrics.Syncers.Set(float64(len(c.syncers)))
	}
}

// The other fields are only touched by the worker holding the CV's key: the
// workqueue never hands one key to two workers at once.
func (s *syncerState) force(trigger string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forced = trigger
}

func (s *syncerState) forcedBy() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forced
}

func (s *syncerState) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.woken = true
}

// takeWoken reports and clears a wake.
func (s *syncerState) takeWoken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	woken := s.woken
	s.woken = false
	return woken
}

// due reports whether the CV should poll now at interval, fixing the
// schedule the first time it sees the CV (or a new interval) so events do
// not push it back.
func (s *syncerState) due(cv *cvv1.ContainerVersion, interval time.Duration, now time.Time) (bool, time.Duration) {
	if s.next.IsZero() || interval != s.interval {
		last := s.lastPoll
		if last.IsZero() && cv.Status.LastPolled != nil {
			last = cv.Status.LastPolled.Time
		}
		s.interval = interval
		s.next = syncer.NextPoll(last, interval, now, syncer.Jitter(s.key))
	}
	if s.forcedBy() != "" || s.takeWoken() {
		return true, 0
	}
	if now.Before(s.next) {
		return false, s.next.Sub(now)
	}
	return true, 0
}

// polled records a poll at now and returns the trigger that caused it.
func (s *syncerState) polled(now time.Time) string {
	s.mu.Lock()
	trigger := s.forced
	s.forced = ""
	s.mu.Unlock()
	if trigger == "" {
		trigger = history.TriggerPoll
	}
	s.lastPoll = now
	s.next = now.Add(s.interval)
	return trigger
}

func pollInterval(cv *cvv1.ContainerVersion) time.Duration {
	if cv.Spec.PollIntervalSeconds <= 0 {
		return time.Minute
	}
	return time.Duration(cv.Spec.PollIntervalSeconds) * time.Second
}

func liveness(cv *cvv1.ContainerVersion) time.Duration {
	if cv.Spec.LivenessSeconds <= 0 {
		return 10 * time.Minute
	}
	return time.Duration(cv.Spec.LivenessSeconds) * time.Second
}

func namespacedKey(cv *cvv1.ContainerVersion) string {
	return cv.Namespace + "/" + cv.Name
}

// budgetRetry is when a poll that this controller's own request budget
// deferred (poller.DeferredByBudget) is tried again: once the budget has a
// token again, spread by the CV's jitter over half an interval (a minute at
// most), rather than a whole interval later.
//
// Why: a poll the budget refuses is pacing, not a registry fault. After a
// restart every new CV polls at once, and with the default budget of that
// time (5 requests a second, a burst of 20) only the first few dozen got
// through; the others were marked Degraded with "request budget exhausted"
// (one status write and one Warning each) and waited a full interval for
// their first answer.
func budgetRetry(err error, key string, interval time.Duration, now time.Time) (time.Time, bool) {
	until, deferred := poller.DeferredByBudget(err)
	if !deferred {
		return time.Time{}, false
	}
	spread := min(interval/2, time.Minute)
	from := now
	if until.After(now) {
		from = until
	}
	return from.Add(time.Duration(syncer.Jitter(key) * float64(spread))), true
}
