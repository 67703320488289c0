package controller

import (
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// recheckDelays space the re-checks of a push event whose digest the
// registry did not serve yet: about 5 s in all, in growing steps.
//
// Why: a registry can deliver its push notification before readers see the
// tag's new digest (measured: a webhook-triggered rollout patched the
// workload only at the next poll, 11.5 s after the push). Re-checking a few
// times costs a few HEADs for that one tag; waiting costs a whole interval.
var recheckDelays = []time.Duration{
	200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond,
	800 * time.Millisecond, 1200 * time.Millisecond, 2 * time.Second,
}

// expectedDigest is the digest a request value (requestValue) names, or "".
func expectedDigest(value string) string {
	_, digest, _ := strings.Cut(value, "/")
	return digest
}

// recheckAfter decides whether a poll asked for by a push event that named
// expected, which found seen, should look again, and after how long.
// attempt counts the re-checks already made. Polls with no expected digest
// (triggers, events that carry none) and polls that found it never recheck.
func recheckAfter(expected, seen string, attempt int) (time.Duration, bool) {
	if expected == "" || seen == expected || attempt < 0 || attempt >= len(recheckDelays) {
		return 0, false
	}
	return recheckDelays[attempt], true
}

// waitForRecheck requeues the key when its pending request's re-check is
// not due yet; true means this sync stops there.
func (c *Controller) waitForRecheck(s *syncerState, value string) bool {
	wait := s.recheckWait(value, c.clock.Now())
	if wait > 0 {
		c.queue.AddAfter(s.key, wait)
	}
	return wait > 0
}

// recheckWait is how long a pending request still waits for its scheduled
// re-check: a CV event arriving meanwhile must not poll sooner.
func (s *syncerState) recheckWait(value string, now time.Time) time.Duration {
	if value == "" || s.recheckValue != value || !now.Before(s.recheckAt) {
		return 0
	}
	return s.recheckAt.Sub(now)
}

// scheduleRecheck keeps the poll request value pending and queues another
// look when its push event's digest was not found; false means the request
// is done (found, not expected, or out of attempts) and may be acknowledged.
func (c *Controller) scheduleRecheck(s *syncerState, value, seen string) bool {
	if s.recheckValue != value {
		s.recheckValue, s.rechecks = value, 0
	}
	wait, again := recheckAfter(expectedDigest(value), seen, s.rechecks)
	if !again {
		if s.rechecks > 0 {
			klog.V(2).InfoS("Push event re-checked", "cv", s.key, "rechecks", s.rechecks, "found", seen == expectedDigest(value))
		}
		s.recheckValue, s.rechecks, s.recheckAt = "", 0, time.Time{}
		return false
	}
	s.rechecks++
	s.recheckAt = c.clock.Now().Add(wait)
	c.queue.AddAfter(s.key, wait)
	return true
}
