package controller

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

func TestPushFirstInterval(t *testing.T) {
	const interval, safety, window = time.Minute, 10 * time.Minute, 24 * time.Hour
	now := t0
	cases := []struct {
		name        string
		rec         pushRecord
		safety      time.Duration
		wantEvery   time.Duration
		wantCovered bool
	}{
		{"never pushed: normal polling", pushRecord{}, safety, interval, false},
		{"pushed an hour ago: safety polls only", pushRecord{lastPush: now.Add(-time.Hour)}, safety, safety, true},
		{"pushed just now", pushRecord{lastPush: now}, safety, safety, true},
		{"last push older than the trust window: pushes stopped", pushRecord{lastPush: now.Add(-window)}, safety, interval, false},
		{"a poll found a move after the last push: lost push", pushRecord{lastPush: now.Add(-time.Hour), lastMiss: now.Add(-time.Minute)}, safety, interval, false},
		{"the push came 30 s after the poll found the move: late", pushRecord{lastPush: now.Add(-30 * time.Second), lastMiss: now.Add(-time.Minute)}, safety, interval, false},
		{"the push came 100 ms after a poll found the move: a race, on time", pushRecord{lastPush: now.Add(-time.Minute + 100*time.Millisecond), lastMiss: now.Add(-time.Minute)}, safety, safety, true},
		{"the push came 6 s after the poll found the move: late", pushRecord{lastPush: now.Add(-time.Minute + 6*time.Second), lastMiss: now.Add(-time.Minute)}, safety, interval, false},
		{"an on-time push after an old miss restores trust", pushRecord{lastPush: now, lastMiss: now.Add(-time.Hour)}, safety, safety, true},
		{"a safety interval no longer than the interval changes nothing", pushRecord{lastPush: now}, interval, interval, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			every, covered := pushFirstInterval(tc.rec, interval, tc.safety, window, now)
			if diff := cmp.Diff([2]any{tc.wantEvery, tc.wantCovered}, [2]any{every, covered}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// countingResolver counts requests and answers one digest.
type countingResolver struct {
	digest string
	calls  int
}

func (r *countingResolver) Resolve(context.Context, poller.ResolveRequest) (poller.ResolvedImage, error) {
	r.calls++
	return poller.ResolvedImage{Digest: r.digest, Version: "v2"}, nil
}

// TestPushFirstSchedule follows one CV (poll interval 1 min, safety 10 min)
// on a fake clock: before any push it polls every minute; after a webhook
// only every 10 minutes; when a safety poll finds a move no push announced,
// it polls every minute again.
func TestPushFirstSchedule(t *testing.T) {
	cv := webCV(polled())
	cv.Spec.PollIntervalSeconds = 60
	f := newFixture(t, poller.ResolvedImage{}, cv, webDeployment(pinned("v1", digest1), true))
	res := &countingResolver{digest: digest1}
	f.c.opts.Resolver = res
	f.c.opts.PushFirst = &PushFirst{}
	pollsOver := func(d time.Duration) int {
		before := res.calls
		for end := f.c.clock.Now().Add(d); f.c.clock.Now().Before(end); {
			f.clock.Step(5 * time.Second)
			f.sync("web")
		}
		return res.calls - before
	}
	if got := pollsOver(10 * time.Minute); got < 9 || got > 11 {
		t.Fatalf("before any push: %d polls in 10 min, want one a minute", got)
	}
	c, _ := f.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(context.Background(), "web", metav1.GetOptions{})
	f.c.notePush(c) // what a webhook poll request does
	if every, covered := f.c.pollEvery(c, f.c.clock.Now()); !covered || every != 10*time.Minute {
		t.Fatalf("after a push: every %s covered %v", every, covered)
	}
	if got := pollsOver(30 * time.Minute); got < 2 || got > 4 {
		t.Fatalf("covered by pushes: %d polls in 30 min, want one per 10 min", got)
	}
	f.c.noteMiss(c) // a safety poll found a move no push announced
	if _, covered := f.c.pollEvery(c, f.c.clock.Now()); covered {
		t.Fatal("still covered after a miss")
	}
	if got := pollsOver(10 * time.Minute); got < 9 || got > 11 {
		t.Fatalf("after a miss: %d polls in 10 min, want one a minute again", got)
	}
}
