package main

import (
	"context"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/controller"
)

// eventsResult is whether the Events of a burst's rollouts reached the
// apiserver: a Simple rollout sends two (RolloutStarted, RolloutSucceeded),
// through client-go's recorder, which queues them and drops what does not
// fit its queue without an error.
type eventsResult struct {
	Expected int `json:"expected"`
	Recorded int `json:"recorded"`
	// LastSeconds is when the last of them was created, from the
	// triggers, at the apiserver's one-second resolution.
	LastSeconds float64 `json:"lastSeconds"`
	// WaitedSeconds is how long the bench waited for them after the last
	// rollout finished.
	WaitedSeconds float64 `json:"waitedSeconds"`
}

// eventsSettle is how long the count of a burst's Events must stay the
// same before the bench takes it as final: the recorder sends them one at
// a time, well under this apart even on a loaded apiserver.
const eventsSettle = 10 * time.Second

// countRolloutEvents waits until every rollout of ms has its two Events
// or their count stops growing, and counts them.
func countRolloutEvents(ctx context.Context, e *env, ms []*moved, start time.Time) eventsResult {
	digestOf := map[string]map[string]string{} // namespace → CV → the digest its move pushed
	r := eventsResult{}
	for _, m := range ms {
		for _, mb := range m.members {
			if digestOf[mb.ns] == nil {
				digestOf[mb.ns] = map[string]string{}
			}
			digestOf[mb.ns][mb.cv] = m.digest
			r.Expected += 2
		}
	}
	from := start.Truncate(time.Second) // creation times have one-second resolution
	waitStart, lastChange := time.Now(), time.Now()
	for ctx.Err() == nil && time.Since(waitStart) < 2*time.Minute {
		n, newest := listRolloutEvents(ctx, e, digestOf, from)
		if n != r.Recorded {
			r.Recorded, lastChange = n, time.Now()
			r.LastSeconds = newest.Sub(from).Seconds()
		}
		if n >= r.Expected || time.Since(lastChange) >= eventsSettle {
			break
		}
		sleepCtx(ctx, time.Second)
	}
	r.WaitedSeconds = since(waitStart)
	return r
}

// listRolloutEvents counts the RolloutStarted and RolloutSucceeded Events
// created at from or later that name the digest their CV was moved to, and
// returns the newest one's creation time.
func listRolloutEvents(ctx context.Context, e *env, digestOf map[string]map[string]string, from time.Time) (int, time.Time) {
	n, newest := 0, from
	for ns, cvs := range digestOf {
		list, err := e.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ContainerVersion"})
		if err != nil {
			continue // counted at the next try
		}
		for _, ev := range list.Items {
			digest, ok := cvs[ev.InvolvedObject.Name]
			if !ok || !isRolloutEvent(ev.Reason) || !strings.Contains(ev.Message, digest) || ev.CreationTimestamp.Time.Before(from) {
				continue
			}
			n++
			if ev.CreationTimestamp.After(newest) {
				newest = ev.CreationTimestamp.Time
			}
		}
	}
	return n, newest
}

func isRolloutEvent(reason string) bool {
	return reason == controller.ReasonRolloutStarted || reason == controller.ReasonRolloutSucceeded
}
