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
	r := eventsResult{}
	for _, m := range ms {
		r.Expected += 2 * len(m.members)
	}
	waitStart, last, lastChange := time.Now(), -1, time.Now()
	for ctx.Err() == nil && time.Since(waitStart) < 2*time.Minute {
		n, newest := listRolloutEvents(ctx, e, ms, start)
		if n != last {
			last, lastChange = n, time.Now()
			r.Recorded = n
			if !newest.IsZero() {
				r.LastSeconds = newest.Sub(start.Truncate(time.Second)).Seconds()
			}
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
// of ms's CVs that name the digest each move pushed, and returns the
// newest one's creation time.
func listRolloutEvents(ctx context.Context, e *env, ms []*moved, start time.Time) (int, time.Time) {
	digestOf := map[string]string{} // "ns/cv" → digest
	namespaces := map[string]bool{}
	for _, m := range ms {
		for _, mb := range m.members {
			digestOf[mb.ns+"/"+mb.cv] = m.digest
			namespaces[mb.ns] = true
		}
	}
	n, newest := 0, time.Time{}
	for ns := range namespaces {
		list, err := e.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ContainerVersion"})
		if err != nil {
			continue // counted at the next try
		}
		for _, ev := range list.Items {
			digest, ok := digestOf[ns+"/"+ev.InvolvedObject.Name]
			if !ok || !isRolloutEvent(ev.Reason) || !strings.Contains(ev.Message, digest) ||
				ev.CreationTimestamp.Time.Before(start.Truncate(time.Second)) {
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
