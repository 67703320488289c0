package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

func TestRecheckAfter(t *testing.T) {
	cases := []struct {
		name           string
		expected, seen string
		attempt        int
		wantWait       time.Duration
		wantAgain      bool
	}{
		{"no digest named: plain trigger", "", digest1, 0, 0, false},
		{"found at once", digest2, digest2, 0, 0, false},
		{"old digest served: first re-check soon", digest2, digest1, 0, 200 * time.Millisecond, true},
		{"registry error: re-check too", digest2, "", 1, 300 * time.Millisecond, true},
		{"last re-check", digest2, digest1, len(recheckDelays) - 1, 2 * time.Second, true},
		{"out of attempts: the next poll finds it", digest2, digest1, len(recheckDelays), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wait, again := recheckAfter(tc.expected, tc.seen, tc.attempt)
			if diff := cmp.Diff([2]any{tc.wantWait, tc.wantAgain}, [2]any{wait, again}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var total time.Duration
	for _, d := range recheckDelays {
		total += d
	}
	if total < 4*time.Second || total > 6*time.Second {
		t.Errorf("re-checks span %s, want about 5 s", total)
	}
}

// sequenceResolver answers with the digests in turn, the last one forever.
type sequenceResolver struct{ digests []string }

func (r *sequenceResolver) Resolve(context.Context, poller.ResolveRequest) (poller.ResolvedImage, error) {
	d := r.digests[0]
	if len(r.digests) > 1 {
		r.digests = r.digests[1:]
	}
	return poller.ResolvedImage{Digest: d, Version: "v2"}, nil
}

// TestWebhookDigestIsRecheckedUntilServed: a push event names digest2 while
// the registry still answers digest1. The request stays pending, a CV event
// meanwhile does not poll before the re-check is due, and the re-check that
// finds digest2 rolls it out as a webhook rollout and acknowledges.
func TestWebhookDigestIsRecheckedUntilServed(t *testing.T) {
	req := request("web-push", cvv1.RequestPoll, history.TriggerWebhook)
	req.Spec.Digest = digest2
	f := newFixtureWith(t, poller.ResolvedImage{}, []runtime.Object{webCV(polled()), req}, webDeployment(pinned("v1", digest1), true))
	res := &sequenceResolver{digests: []string{digest1, digest1, digest2}}
	f.c.opts.Resolver = res
	f.sync("web")
	if got := f.c.pushes.get(repo + ":env-prod").rechecks; got != 1 {
		t.Fatalf("after the stale answer: %d re-checks scheduled, want 1", got)
	}
	f.sync("web") // an event before the re-check is due: no poll
	if len(res.digests) != 2 {
		t.Fatalf("polled before the re-check was due")
	}
	f.clock.Step(200 * time.Millisecond)
	f.sync("web") // still stale
	f.clock.Step(300 * time.Millisecond)
	f.sync("web") // served now
	st := f.lastStatus()
	if st.CurrDigest != digest2 || st.Rollout == nil {
		t.Fatalf("digest2 not rolled out: %+v", st)
	}
	if _, err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).Get(context.Background(), "web-push", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("request not deleted after the digest was found: %v", err)
	}
	if r := st.Rollout; r.Trigger != history.TriggerWebhook {
		t.Errorf("rollout trigger %q, want webhook", r.Trigger)
	}
}

// TestRefRecheckIsSharedByItsCVs: two CVs follow one ref and both get the
// push event for digest2 while the registry still serves digest1. The
// first poll schedules the ref's re-check; the second CV waits for that
// same re-check instead of polling on its own schedule.
func TestRefRecheckIsSharedByItsCVs(t *testing.T) {
	api := webCV(polled())
	api.Name, api.UID = "api", "uid-api"
	reqWeb := request("web-push", cvv1.RequestPoll, history.TriggerWebhook)
	reqWeb.Spec.Digest = digest2
	reqAPI := request("api-push", cvv1.RequestPoll, history.TriggerWebhook)
	reqAPI.Spec.ContainerVersion, reqAPI.Spec.Digest = "api", digest2
	f := newFixtureWith(t, poller.ResolvedImage{}, []runtime.Object{webCV(polled()), api, reqWeb, reqAPI},
		webDeployment(pinned("v1", digest1), true))
	res := &countingResolver{digest: digest1}
	f.c.opts.Resolver = res
	f.sync("web")
	rec := f.c.pushes.get(repo + ":env-prod")
	if rec.expected != digest2 || rec.rechecks != 1 {
		t.Fatalf("after web's stale answer: schedule %+v, want one re-check of digest2", rec)
	}
	polls := res.calls
	f.sync("api")
	if res.calls != polls {
		t.Errorf("api polled on its own (%d resolves) instead of waiting for the ref's re-check", res.calls-polls)
	}
	for _, name := range []string{"web-push", "api-push"} {
		if _, err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("request %s should wait for the re-check: %v", name, err)
		}
	}
}

// failingFirstResolver fails its first fails resolves, then answers digest.
type failingFirstResolver struct {
	fails  int
	digest string
}

func (r *failingFirstResolver) Resolve(context.Context, poller.ResolveRequest) (poller.ResolvedImage, error) {
	if r.fails > 0 {
		r.fails--
		return poller.ResolvedImage{}, errors.New("503 Service Unavailable")
	}
	return poller.ResolvedImage{Digest: r.digest, Version: "v2"}, nil
}

// TestRequestWhosePollFailedIsRetriedSoon: a trigger (no digest) and a
// push event whose poll fails are not consumed with the failure: the
// request stays pending, the ref is not marked covered by pushes (its next
// poll would be the safety interval away), and the first re-check rolls
// the new digest out with the request's trigger.
func TestRequestWhosePollFailedIsRetriedSoon(t *testing.T) {
	for _, tc := range []struct {
		name, trigger, digest string
	}{
		{"trigger", history.TriggerAPI, ""},
		{"push event", history.TriggerWebhook, digest2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request("web-req", cvv1.RequestPoll, tc.trigger)
			req.Spec.Digest = tc.digest
			f := newFixtureWith(t, poller.ResolvedImage{}, []runtime.Object{webCV(polled()), req}, webDeployment(pinned("v1", digest1), true))
			f.c.opts.Resolver = &failingFirstResolver{fails: 1, digest: digest2}
			f.sync("web")
			if _, err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).Get(context.Background(), "web-req", metav1.GetOptions{}); err != nil {
				t.Fatalf("the request was consumed by the failed poll: %v", err)
			}
			if rec := f.c.pushes.get(repo + ":env-prod"); rec.rechecks != 1 || !rec.lastPush.IsZero() {
				t.Fatalf("after the failed poll: schedule %+v, want one re-check and no push noted", rec)
			}
			f.clock.Step(recheckDelays[0])
			f.sync("web")
			st := f.lastStatus()
			if st.CurrDigest != digest2 || st.Rollout == nil || st.Rollout.Trigger != tc.trigger {
				t.Fatalf("after the re-check: %+v, want digest2 rolled out by %s", st, tc.trigger)
			}
		})
	}
}
