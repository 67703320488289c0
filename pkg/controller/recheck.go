package controller

import (
	"time"

	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
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

// waitForRecheck requeues the key when its ref's push re-check for the
// digest a pending request expects is not due yet; true means this sync
// stops there. A CV event meanwhile must not poll sooner, and every CV on
// the ref waits for the same re-check.
func (c *Controller) waitForRecheck(s *syncerState, cv *cvv1.ContainerVersion, expected string) bool {
	rec := c.pushes.get(pushRef(cv))
	now := c.clock.Now()
	if expected == "" || rec.expected != expected || !now.Before(rec.recheckAt) {
		return false
	}
	c.queue.AddAfter(s.key, rec.recheckAt.Sub(now))
	return true
}

// scheduleRecheck keeps the request pending and queues another look when
// the push's digest was not found; false means the request is done (found,
// not expected, or out of attempts) and may be deleted.
func (c *Controller) scheduleRecheck(s *syncerState, cv *cvv1.ContainerVersion, expected, seen string) bool {
	again := false
	now := c.clock.Now()
	c.pushes.update(pushRef(cv), func(r *pushRecord) {
		if r.expected != expected {
			r.expected, r.rechecks, r.recheckAt = expected, 0, time.Time{}
		}
		if now.Before(r.recheckAt) {
			again = true // another CV of the ref scheduled this re-check already
			return
		}
		wait, ok := recheckAfter(expected, seen, r.rechecks)
		if !ok {
			if r.rechecks > 0 {
				klog.V(2).InfoS("Push event re-checked", "ref", pushRef(cv), "rechecks", r.rechecks, "found", seen == expected)
			}
			if seen == expected || r.rechecks >= len(recheckDelays) {
				r.expected, r.rechecks, r.recheckAt = "", 0, time.Time{}
			}
			return
		}
		r.rechecks++
		r.recheckAt = now.Add(wait)
		again = true
	})
	if again {
		c.queue.AddAfter(s.key, c.pushes.get(pushRef(cv)).recheckAt.Sub(now))
	}
	return again
}

// recheckToken is what a request's re-check after a failed poll waits for:
// the digest the push named, or for a request that names none (a trigger)
// the request itself.
//
// Why: a request whose poll failed (the registry's answer, a budget
// refusal, a shared request that timed out) used to be consumed with the
// failure, and on a ref pushes cover the next poll came only at the safety
// interval: the bench saw one announced push patched after 52 s. Now the
// request stays pending and is looked at again on the re-check delays.
func recheckToken(req *cvv1.ContainerVersionRequest) string {
	if d := pushedDigest(req); d != "" {
		return d
	}
	return "request/" + req.Namespace + "/" + req.Name
}
