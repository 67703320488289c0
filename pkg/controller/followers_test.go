package controller

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestFirstPollAfterAMoveWakesTheOtherFollowers: web's scheduled poll sees
// the tag move; api follows the same repo:tag and polled a second ago, so
// its own poll is not due for an interval. It rolls out at once anyway,
// answered from web's registry result.
func TestFirstPollAfterAMoveWakesTheOtherFollowers(t *testing.T) {
	api := gen.NewCV(ns, "api", repo)
	api.UID, api.Status = "uid-api", polled()
	f := newFixtureWith(t, poller.ResolvedImage{}, []runtime.Object{webCV(neverPolled()), api},
		webDeployment(pinned("v1", digest1), true), gen.NewDeployment(ns, "api", "api", pinned("v1", digest1), 2))
	registry := &countingResolver{digest: digest2}
	f.c.opts.Resolver = poller.NewSharedResolver(registry, f.clock)

	f.sync("api")
	if n := registry.calls; n != 0 {
		t.Fatalf("api polled %d times a second after its last poll", n)
	}
	f.sync("web")
	asked := registry.calls
	if st := f.statusOf("web"); st.Rollout == nil || st.Rollout.Digest != digest2 {
		t.Fatalf("web did not start rolling the new digest out: %+v", st.Rollout)
	}
	f.sync("api")
	st := f.statusOf("api")
	if st.Rollout == nil || st.Rollout.Digest != digest2 || st.Rollout.Trigger != history.TriggerPoll {
		t.Fatalf("api was not woken to roll the move out: %+v", st.Rollout)
	}
	if n := registry.calls; n != asked {
		t.Errorf("the woken follower asked the registry again: %d requests, want %d", n, asked)
	}
}

// TestFollowersAreWokenOncePerMove: the followers that see the move
// themselves do not wake the others again, and a follower already on the
// digest (or refusing it) is not woken.
func TestFollowersAreWokenOncePerMove(t *testing.T) {
	failed := polled()
	failed.FailedDigest = digest2
	skip := gen.NewCV(ns, "skip", repo)
	skip.UID, skip.Status = "uid-skip", failed
	f := newFixtureWith(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, []runtime.Object{webCV(deployed()), skip})
	f.sync("skip")
	web, _ := f.c.cvLister.ContainerVersions(ns).Get("web")
	f.c.wakeFollowers(web, digest2)
	if s := f.c.existingSyncer(ns + "/skip"); s.takeWoken() {
		t.Error("a follower that refused the digest was woken")
	}
	if f.c.announced.first(followedKey(web), digest2) {
		t.Error("the move was not remembered as announced")
	}
	if !lacksDigest(deployed(), digest2) || lacksDigest(deployed(), digest1) {
		t.Error("lacksDigest misjudges a follower")
	}
	if lacksDigest(cvv1.ContainerVersionStatus{FailedDigest: digest2}, digest2) {
		t.Error("a follower that failed the digest would be woken")
	}
}

// statusOf is the status of the newest update of the CV name (a zero
// status when none was written).
func (f *fixture) statusOf(name string) cvv1.ContainerVersionStatus {
	as := f.cvs.Actions()
	for i := len(as) - 1; i >= 0; i-- {
		if u, ok := as[i].(core.UpdateAction); ok && as[i].GetSubresource() == "status" {
			if cv := u.GetObject().(*cvv1.ContainerVersion); cv.Name == name {
				return cv.Status
			}
		}
	}
	return cvv1.ContainerVersionStatus{}
}

// TestAnnouncedDigestsAreBounded: refs that come and go do not grow the
// memory of announced moves without bound.
func TestAnnouncedDigestsAreBounded(t *testing.T) {
	var a announcedDigests
	for i := range 3 * maxAnnounced {
		if !a.first(fmt.Sprintf("|repo:pr-%d", i), digest1) {
			t.Fatalf("ref %d: a first move was not news", i)
		}
	}
	if len(a.last) > maxAnnounced {
		t.Errorf("%d refs remembered, bound %d", len(a.last), maxAnnounced)
	}
	if a.first(fmt.Sprintf("|repo:pr-%d", 3*maxAnnounced-1), digest1) {
		t.Error("the newest move was forgotten at once")
	}
}
