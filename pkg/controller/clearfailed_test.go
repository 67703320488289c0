package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	core "k8s.io/client-go/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// TestReplayedClearFailedDoesNotRollOutTheFailingDigestAgain: a leader acts
// on a clear-failed request (failedDigest cleared, the digest rolled out
// again) and its delete of the request fails: it dies right after the
// status write, or the delete fails and the leader goes on and dies later.
// The digest fails again. The new leader finds the request left behind:
// it names the first failure, not this one, so it is deleted without
// clearing anything, and the failing digest is not rolled out a third
// time. The second case is why the request carries the failure's time,
// not only its digest: the new leader sees nothing between the two
// failures of the same digest.
func TestReplayedClearFailedDoesNotRollOutTheFailingDigestAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		// late: the leader that acted drives the second rollout to its
		// failure, and only then does a new leader take over.
		late bool
	}{
		{name: "the new leader drives the second rollout"},
		{name: "the new leader comes after the second failure", late: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testReplayedClearFailed(t, tc.late) })
	}
}

func testReplayedClearFailed(t *testing.T, late bool) {
	v1, v2 := pinned("v1", digest1), pinned("v2", digest2)
	registry := poller.ResolvedImage{Digest: digest2, Version: "v2"} // the tag stays on the failing v2
	rollback := func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }
	f := newFixture(t, registry, webCV(rollingOut(t0.Add(-10*time.Minute)), rollback), webDeployment(v2, false))
	f.nameRequests()

	// The rollout of v2 times out and is rolled back: v2 is the failed digest.
	f.syncUntilAtRest(f.c, f.inf)
	if st := f.apiCV().Status; st.FailedDigest != digest2 || f.image() != v1 {
		t.Fatalf("first rollout: failedDigest %q, image %q; want %q, %q", st.FailedDigest, f.image(), digest2, v1)
	}

	// A minute later the user clears the failure through a standby (a
	// request object). The leader acts: one status write, v2 patched
	// again. Its delete of the request fails.
	failing := clearFailedWhoseDeleteFails(t, f)
	f.settle(f.inf)
	f.sync("web")
	if st := f.apiCV().Status; st.FailedDigest != "" || st.Rollout == nil || st.Rollout.Trigger != history.TriggerClearFailed || f.image() != v2 {
		t.Fatalf("clear-failed: failedDigest %q, rollout %+v, image %q; want v2 rolled out again", st.FailedDigest, st.Rollout, f.image())
	}
	if n := len(f.requestObjects()); n != 1 {
		t.Fatalf("%d requests left; the one acted on must be left behind", n)
	}

	// The second rollout of v2 times out too and is rolled back, driven by
	// a new leader that knows only what the API holds, or (late) by the
	// same leader, a new one taking over afterwards.
	f.clock.Step(10 * time.Minute)
	leader, inf := f.c, f.inf
	if !late {
		*failing = false
		leader, inf = f.newController(registry, nil)
	}
	f.syncUntilAtRest(leader, inf)
	if st := f.apiCV().Status; st.FailedDigest != digest2 || f.image() != v1 {
		t.Fatalf("second rollout: failedDigest %q, image %q; want %q, %q", st.FailedDigest, f.image(), digest2, v1)
	}
	if late {
		*failing = false
		leader, inf = f.newController(registry, nil)
	}

	// The request left behind must not clear this failure nor start v2 again.
	checkTriedAgainOnce(t, f, leader, inf, history.TriggerPoll)
}

// clearFailedWhoseDeleteFails sends a clear-failed request through a
// standby (a request object) a minute later, and makes the leader's
// delete of it fail while *failing, as if the leader died first.
func clearFailedWhoseDeleteFails(t *testing.T, f *fixture) *bool {
	t.Helper()
	f.clock.Step(time.Minute)
	if err := NewRequests(f.cvs, f.clock).ClearFailed(context.Background(), ns, "web"); err != nil {
		t.Fatal(err)
	}
	failing := true
	f.cvs.PrependReactor("delete", "containerversionrequests", func(core.Action) (bool, runtime.Object, error) {
		if failing {
			return true, nil, errors.New("the leader died before this delete")
		}
		return false, nil, nil
	})
	return &failing
}

// checkTriedAgainOnce checks the end of a clear-failed retry of v2 that
// failed again: more syncs (the request left behind, the poll or the
// promotion source) start nothing, the Deployment was patched once per
// rollout and rollback, the spent request is deleted, and the history
// holds the retry's rollback over the first one's (started by
// firstTrigger).
func checkTriedAgainOnce(t *testing.T, f *fixture, leader *Controller, inf Informers, firstTrigger string) {
	t.Helper()
	f.clock.Step(time.Minute)
	for i := 0; i < 3; i++ {
		f.settle(inf)
		f.syncOn(leader)
	}
	if st := f.apiCV().Status; st.FailedDigest != digest2 || st.Rollout != nil {
		t.Errorf("v2 tried again: failedDigest %q, rollout %+v; want %q and none", st.FailedDigest, st.Rollout, digest2)
	}
	// One patch per rollout and rollback: v1 back, v2 again, v1 back.
	v1, v2 := pinned("v1", digest1), pinned("v2", digest2)
	if diff := cmp.Diff([]string{v1, v2, v1}, f.patchedImages()); diff != "" {
		t.Errorf("images patched into the Deployment (-want +got):\n%s", diff)
	}
	if n := len(f.requestObjects()); n != 0 {
		t.Errorf("%d requests left; the spent one must be deleted", n)
	}
	var hist []string
	for _, r := range f.history() {
		hist = append(hist, r.Outcome+" "+r.Trigger)
	}
	want := []string{history.OutcomeRolledBack + " " + history.TriggerClearFailed, history.OutcomeRolledBack + " " + firstTrigger}
	if diff := cmp.Diff(want, hist); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

// TestClearFailedRetriesAFollowersFailedPromotionOnce: a CV that follows a
// source (spec.promotion.from) fails to roll out the promoted v2 and rolls
// back. Its status.currDigest stays on v2, so later syncs do not promote
// the source's v2 again. A clear-failed request has the controller try v2
// again, once, as it has a CV that polls its tag try the tag's digest
// again: when that rollout fails too, v2 is left alone. The leader's
// delete of the request fails (see TestReplayedClearFailedDoesNot...), so
// the request is left behind; the new leader finds it spent and does not
// roll v2 out a third time.
func TestClearFailedRetriesAFollowersFailedPromotionOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		late bool // as in TestReplayedClearFailedDoesNotRollOutTheFailingDigestAgain
	}{
		{name: "the new leader drives the second rollout"},
		{name: "the new leader comes after the second failure", late: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testFollowerClearFailed(t, tc.late) })
	}
}

func testFollowerClearFailed(t *testing.T, late bool) {
	v1, v2 := pinned("v1", digest1), pinned("v2", digest2)
	promoting := rollingOut(t0.Add(-10 * time.Minute))
	promoting.Rollout.Trigger = history.TriggerPromote
	rollback := func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }
	f := newFollowerFixtureAt(t, promoting, webDeployment(v2, false), sourceSince(t0.Add(-2*time.Hour)), 3600, rollback)
	f.nameRequests()
	follower := func(o *Options) { o.Fleet, o.Kubeconfigs = f.c.opts.Fleet, f.c.opts.Kubeconfigs }

	// The promoted v2 times out and is rolled back; the source still
	// offers v2, and the next syncs do not promote it again.
	f.syncUntilAtRest(f.c, f.inf)
	for i := 0; i < 2; i++ {
		f.settle(f.inf)
		f.syncOn(f.c)
	}
	if st := f.apiCV().Status; st.FailedDigest != digest2 || st.CurrDigest != digest2 || st.Rollout != nil || f.image() != v1 {
		t.Fatalf("first rollout: failedDigest %q currDigest %q rollout %+v image %q; want %q, %q, none, %q",
			st.FailedDigest, st.CurrDigest, st.Rollout, f.image(), digest2, digest2, v1)
	}

	// The user clears the failure through a standby; the leader acts and
	// its delete of the request fails.
	failing := clearFailedWhoseDeleteFails(t, f)
	f.settle(f.inf)
	f.syncOn(f.c)
	if st := f.apiCV().Status; st.FailedDigest != "" || st.Rollout == nil || st.Rollout.Digest != digest2 ||
		st.Rollout.Trigger != history.TriggerClearFailed || f.image() != v2 {
		t.Fatalf("clear-failed: failedDigest %q, rollout %+v, image %q; want v2 rolled out again, trigger %s",
			st.FailedDigest, st.Rollout, f.image(), history.TriggerClearFailed)
	}
	if n := len(f.requestObjects()); n != 1 {
		t.Fatalf("%d requests left; the one acted on must be left behind", n)
	}

	// The second rollout of v2 fails too, driven by a new leader, or (late)
	// by the same one, a new leader taking over afterwards.
	f.clock.Step(10 * time.Minute)
	leader, inf := f.c, f.inf
	if !late {
		*failing = false
		leader, inf = f.newController(poller.ResolvedImage{}, follower)
	}
	f.syncUntilAtRest(leader, inf)
	if st := f.apiCV().Status; st.FailedDigest != digest2 || f.image() != v1 {
		t.Fatalf("second rollout: failedDigest %q, image %q; want %q, %q", st.FailedDigest, f.image(), digest2, v1)
	}
	if late {
		*failing = false
		leader, inf = f.newController(poller.ResolvedImage{}, follower)
	}

	// Neither the source's v2 nor the request left behind starts v2 again.
	checkTriedAgainOnce(t, f, leader, inf, history.TriggerPromote)
}

// TestClearFailedRequestsNameTheFailureTheyClear: both ways a request is
// taken, as an object (a standby) and in memory (the leader), stamp the
// CV's failed digest and the time of that failure; with nothing failed,
// the request is a poll.
func TestClearFailedRequestsNameTheFailureTheyClear(t *testing.T) {
	failedAt := t0.Add(-time.Minute)
	failed := polled()
	failed.CurrStatus, failed.CurrStatusTime, failed.FailedDigest = cvv1.StatusFailed, &metav1.Time{Time: failedAt}, digest2
	for _, tc := range []struct {
		name   string
		status cvv1.ContainerVersionStatus
		leader bool
		want   string // action digest failed-at
	}{
		{"standby, a failure", failed, false, "ClearFailed " + digest2 + " 2026-11-29T07:59:00Z"},
		{"leader, a failure", failed, true, "ClearFailed " + digest2 + " 2026-11-29T07:59:00Z"},
		{"standby, nothing failed", polled(), false, "Poll  "},
		{"leader, nothing failed", polled(), true, "Poll  "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, poller.ResolvedImage{}, webCV(tc.status), webDeployment(pinned("v1", digest1), true))
			f.nameRequests()
			requests := NewRequests(f.cvs, f.clock)
			requests.Local = f.c
			f.c.SetLeading(func() bool { return tc.leader })
			if err := requests.ClearFailed(context.Background(), ns, "web"); err != nil {
				t.Fatal(err)
			}
			reqs := f.c.local.of(ns + "/web")
			if !tc.leader {
				reqs = f.requestObjects()
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			got := r.Spec.Action + " " + r.Spec.Digest + " " + r.Annotations[cvv1.AnnotationFailedAt]
			if got != tc.want || r.Spec.Trigger != history.TriggerClearFailed {
				t.Errorf("request %q trigger %q, want %q trigger %q", got, r.Spec.Trigger, tc.want, history.TriggerClearFailed)
			}
		})
	}
}

// TestClearsFailureOnlyTheFailureItNames judges requests against the CV's
// status: the stamped failure is cleared, another is not, and a request
// without a digest (an older cvmanager's) clears whatever failed.
func TestClearsFailureOnlyTheFailureItNames(t *testing.T) {
	at := &metav1.Time{Time: t0}
	st := cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusFailed, CurrStatusTime: at, FailedDigest: digest2}
	stamped := func(digest string, failedAt time.Time) *cvv1.ContainerVersionRequest {
		r := request("web-x", cvv1.RequestClearFailed, history.TriggerClearFailed)
		r.Spec.Digest = digest
		r.Annotations = map[string]string{cvv1.AnnotationFailedAt: failedAt.UTC().Format(time.RFC3339)}
		return r
	}
	digestOnly := request("web-y", cvv1.RequestClearFailed, history.TriggerClearFailed)
	digestOnly.Spec.Digest = digest2
	for _, tc := range []struct {
		name string
		req  *cvv1.ContainerVersionRequest
		want bool
	}{
		{"the failure it names", stamped(digest2, t0.Add(300*time.Millisecond)), true}, // the API keeps whole seconds
		{"a later failure of the same digest", stamped(digest2, t0.Add(-time.Minute)), false},
		{"a failure of another digest", stamped(digest1, t0), false},
		{"no time stamped: the digest decides", digestOnly, true},
		{"an older cvmanager's request: whatever failed", request("web-z", cvv1.RequestClearFailed, history.TriggerClearFailed), true},
	} {
		if got := clearsFailure(tc.req, st); got != tc.want {
			t.Errorf("%s: clearsFailure %v, want %v", tc.name, got, tc.want)
		}
		live, spent := splitSpent(webCV(st), []*cvv1.ContainerVersionRequest{tc.req})
		if (len(live) == 1) != tc.want || (len(spent) == 1) == tc.want {
			t.Errorf("%s: %d live, %d spent", tc.name, len(live), len(spent))
		}
	}
	cleared := st
	cleared.FailedDigest = ""
	if clearsFailed([]*cvv1.ContainerVersionRequest{stamped(digest2, t0)}, cleared) {
		t.Error("a request for a failure already cleared clears again")
	}
}

// nameRequests names created requests as the apiserver does with
// generateName, and gives them a UID.
func (f *fixture) nameRequests() {
	n := 0
	f.cvs.PrependReactor("create", "containerversionrequests", func(a core.Action) (bool, runtime.Object, error) {
		obj := a.(core.CreateAction).GetObject().(*cvv1.ContainerVersionRequest)
		n++
		obj.Name = fmt.Sprintf("%s%d", obj.GenerateName, n)
		obj.UID = types.UID("uid-" + obj.Name)
		return false, nil, nil
	})
}

// syncOn runs one sync of the CV web on controller c.
func (f *fixture) syncOn(c *Controller) {
	f.t.Helper()
	if err := c.sync(context.Background(), ns+"/web"); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

// syncUntilAtRest syncs web on c, its caches caught up before each sync,
// until no rollout is under way.
func (f *fixture) syncUntilAtRest(c *Controller, inf Informers) {
	f.t.Helper()
	for i := 0; i < 6; i++ {
		f.settle(inf)
		f.syncOn(c)
		if f.apiCV().Status.Rollout == nil {
			f.settle(inf)
			return
		}
	}
	f.t.Fatalf("the rollout did not finish: %+v", f.apiCV().Status.Rollout)
}

// settle waits until the caches of inf show what the API holds: the CV's
// status, the Deployment's image and the requests.
func (f *fixture) settle(inf Informers) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f.cachesCaughtUp(inf) {
		if time.Now().After(deadline) {
			f.t.Fatal("the caches never showed the API's objects")
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fixture) cachesCaughtUp(inf Informers) bool {
	cached, err := inf.CVs.Lister().ContainerVersions(ns).Get("web")
	if err != nil || !equality.Semantic.DeepEqual(cached.Status, f.apiCV().Status) {
		return false
	}
	d, err := inf.Workloads.Apps().V1().Deployments().Lister().Deployments(ns).Get("web")
	if err != nil || imageOf(d) != f.image() {
		return false
	}
	reqs, err := inf.Requests.Lister().ContainerVersionRequests(ns).List(labels.Everything())
	return err == nil && len(reqs) == len(f.requestObjects())
}

// apiCV, image and requestObjects read the API through the trackers, so
// the reads are not counted among the actions.
func (f *fixture) apiCV() *cvv1.ContainerVersion {
	f.t.Helper()
	obj, err := f.cvs.Tracker().Get(cvv1.SchemeGroupVersion.WithResource("containerversions"), ns, "web")
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*cvv1.ContainerVersion)
}

func (f *fixture) image() string {
	f.t.Helper()
	obj, err := f.kube.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), ns, "web")
	if err != nil {
		f.t.Fatal(err)
	}
	return imageOf(obj.(*appsv1.Deployment))
}

func imageOf(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "app" {
			return c.Image
		}
	}
	return ""
}

func (f *fixture) requestObjects() []*cvv1.ContainerVersionRequest {
	f.t.Helper()
	obj, err := f.cvs.Tracker().List(cvv1.SchemeGroupVersion.WithResource("containerversionrequests"),
		cvv1.SchemeGroupVersion.WithKind("ContainerVersionRequest"), ns)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*cvv1.ContainerVersionRequest
	for i := range obj.(*cvv1.ContainerVersionRequestList).Items {
		out = append(out, &obj.(*cvv1.ContainerVersionRequestList).Items[i])
	}
	return out
}

// patchedImages are the images the patches of the Deployment wrote, in order.
func (f *fixture) patchedImages() []string {
	var out []string
	for _, a := range f.kube.Actions() {
		p, ok := a.(core.PatchAction)
		if !ok || a.GetResource().Resource != "deployments" {
			continue
		}
		out = append(out, patchedImage(string(p.GetPatch())))
	}
	return out
}

// patchedImage is the image a workload image patch writes.
func patchedImage(patch string) string {
	var p struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct{ Image string } `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(patch), &p); err != nil || len(p.Spec.Template.Spec.Containers) != 1 {
		return "unexpected patch " + patch
	}
	return p.Spec.Template.Spec.Containers[0].Image
}

// TestSentEffectsCoverABurstOfEveryCV: the effects of a 10,000-CV burst,
// six per rollout, are all remembered, so a replay of any sends nothing;
// a CV forgets only its own older rollouts, and a deleted CV everything.
func TestSentEffectsCoverABurstOfEveryCV(t *testing.T) {
	const cvs, perRollout = 10000, 6
	var s sentEffects
	key := func(i int) string { return fmt.Sprintf("team/web-%d", i) }
	for pass, want := range []bool{true, false} { // sent once, then replayed
		for i := 0; i < cvs; i++ {
			for k := 0; k < perRollout; k++ {
				if got := s.first(key(i), "rollout-a", fmt.Sprint("effect-", k)); got != want {
					t.Fatalf("pass %d, %s effect %d: first %v, want %v", pass, key(i), k, got, want)
				}
			}
		}
	}
	s.first(key(0), "rollout-b", "effect-0")
	if s.first(key(0), "rollout-a", "effect-0") {
		t.Error("the rollout before the last was forgotten")
	}
	s.first(key(0), "rollout-c", "effect-0")
	if !s.first(key(0), "rollout-a", "effect-1") {
		t.Error("a third rollout did not make room: rollout-a still remembered")
	}
	if s.first(key(1), "rollout-a", "effect-0") {
		t.Error("another CV's rollouts evicted this one's")
	}
	s.forget(key(1))
	if !s.first(key(1), "rollout-a", "effect-0") {
		t.Error("a deleted CV's effects are still remembered")
	}
}
