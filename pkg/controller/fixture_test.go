package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/test/gen"
)

// The fixture follows kubernetes/sample-controller: fake clientsets seeded
// with objects, informers filled from them, one sync of a key, and then the
// API actions and the status written are compared with what is expected.

const (
	ns      = "team"
	repo    = "reg.example/team/app"
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

// fixedResolver answers every resolve with one image.
type fixedResolver struct{ img poller.ResolvedImage }

func (r fixedResolver) Resolve(context.Context, poller.ResolveRequest) (poller.ResolvedImage, error) {
	return r.img, nil
}

type fixture struct {
	t        *testing.T
	kube     *kubefake.Clientset
	cvs      *cvfake.Clientset
	clock    *clocktesting.FakeClock
	recorder *record.FakeRecorder
	c        *Controller
	inf      Informers // the controller's caches, for a test to make one lag
}

// newFixture seeds the clientsets, builds the controller as `run` does and
// waits for its caches; the actions of that set-up are forgotten.
func newFixture(t *testing.T, resolved poller.ResolvedImage, cv *cvv1.ContainerVersion, objs ...runtime.Object) *fixture {
	return newFixtureWith(t, resolved, []runtime.Object{cv}, objs...)
}

// newFixtureWith seeds the CV clientset with cvObjs (a CV and its requests).
func newFixtureWith(t *testing.T, resolved poller.ResolvedImage, cvObjs []runtime.Object, objs ...runtime.Object) *fixture {
	return newFixtureOpts(t, resolved, cvObjs, nil, objs...)
}

// newFixtureOpts is newFixtureWith with the controller's options edited.
func newFixtureOpts(t *testing.T, resolved poller.ResolvedImage, cvObjs []runtime.Object, edit func(*Options), objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		kube:     kubefake.NewClientset(objs...),
		cvs:      cvfake.NewSimpleClientset(cvObjs...),
		clock:    clocktesting.NewFakeClock(t0),
		recorder: record.NewFakeRecorder(20),
	}
	f.c, f.inf = f.newController(resolved, edit)
	f.kube.ClearActions()
	f.cvs.ClearActions()
	return f
}

// newController builds a controller over f's clientsets as `run` does,
// with caches of its own, and waits for them: a second one is a new
// leader that knows only what the API holds.
func (f *fixture) newController(resolved poller.ResolvedImage, edit func(*Options)) (*Controller, Informers) {
	f.t.Helper()
	factories := NewFactories(f.kube, f.cvs, Scope{Namespace: ns})
	inf := factories.Informers()
	opts := Options{Namespace: ns, Resolver: fixedResolver{resolved}, DefaultHistory: true}
	if edit != nil {
		edit(&opts)
	}
	c := New(f.kube, f.cvs, inf, f.recorder, f.clock, opts)
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	factories.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		f.t.Fatal("caches did not sync")
	}
	return c, inf
}

// sync runs one sync of the CV's key.
func (f *fixture) sync(name string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), ns+"/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

// actions lists the writes made, as "verb resource[/subresource] name".
func actions(c interface{ Actions() []core.Action }) []string {
	var out []string
	for _, a := range c.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		name := ""
		switch a := a.(type) {
		case core.GetAction:
			name = a.GetName()
		case core.PatchAction:
			name = a.GetName()
		case core.UpdateAction:
			name = a.GetObject().(metav1.Object).GetName()
		case core.CreateAction:
			name = a.GetObject().(metav1.Object).GetName()
		case core.DeleteAction:
			name = a.GetName()
		}
		out = append(out, strings.TrimSpace(a.GetVerb()+" "+res+" "+name))
	}
	return out
}

// lastStatus is the status of the newest update of the CV.
func (f *fixture) lastStatus() cvv1.ContainerVersionStatus {
	f.t.Helper()
	as := f.cvs.Actions()
	for i := len(as) - 1; i >= 0; i-- {
		if u, ok := as[i].(core.UpdateAction); ok && as[i].GetSubresource() == "status" {
			return u.GetObject().(*cvv1.ContainerVersion).Status
		}
	}
	f.t.Fatal("no status written")
	return cvv1.ContainerVersionStatus{}
}

func (f *fixture) history() []history.Record {
	f.t.Helper()
	cv, err := f.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	recs, err := history.NewStore(f.kube).List(context.Background(), ns, history.ConfigMapName(cv))
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, strings.SplitN(e, " ", 3)[1])
		default:
			return out
		}
	}
}

// webCV selects app=web and follows repo:env-prod.
func webCV(status cvv1.ContainerVersionStatus, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	cv := gen.NewCV(ns, "web", repo, edit...)
	cv.UID = "uid-web"
	cv.Status = status
	return cv
}

// webDeployment runs image; ready says whether its status shows every
// replica updated and available.
func webDeployment(image string, ready bool) *appsv1.Deployment {
	d := gen.NewDeployment(ns, "web", "web", image, 2)
	d.Generation = 1
	if ready {
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	}
	return d
}

func pinned(version, digest string) string { return gen.Pinned(repo, version, digest) }

// deployed is the status of a CV whose v1 rolled out.
func deployed() cvv1.ContainerVersionStatus {
	return cvv1.ContainerVersionStatus{
		CurrVersion: "v1", CurrDigest: digest1, CurrStatus: cvv1.StatusSuccess,
		SuccessVersion: "v1", SuccessDigest: digest1, LastPolled: &metav1.Time{Time: t0.Add(-time.Hour)},
	}
}

// neverPolled is deployed() before this controller's first poll.
func neverPolled() cvv1.ContainerVersionStatus {
	s := deployed()
	s.LastPolled = nil
	return s
}

// polled is deployed() just after a poll: no poll is due.
func polled() cvv1.ContainerVersionStatus {
	s := deployed()
	s.LastPolled = &metav1.Time{Time: t0.Add(-time.Second)}
	return s
}

// restoring is a drift restore of v1 under way.
func restoring() cvv1.ContainerVersionStatus {
	s := deployed()
	s.CurrStatus = cvv1.StatusProgressing
	s.Rollout = &cvv1.RolloutStatus{Version: "v1", Digest: digest1, FromVersion: "v1", FromDigest: digest1,
		Trigger: history.TriggerDrift, StartTime: metav1.Time{Time: t0.Add(-time.Second)}, Step: rollout.StepMigrated}
	return s
}

// request is a pending request for the CV web, as Requests creates one.
func request(name, action, trigger string) *cvv1.ContainerVersionRequest {
	return &cvv1.ContainerVersionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name)},
		Spec:       cvv1.ContainerVersionRequestSpec{ContainerVersion: "web", Action: action, Trigger: trigger},
	}
}

// rollingBack is rollingOut after its failure, with the rollback recorded.
func rollingBack(started time.Time) cvv1.ContainerVersionStatus {
	st := rollingOut(started)
	st.Rollout.RollingBack = true
	st.Conditions = []metav1.Condition{{Type: cvv1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: "Timeout", Message: "rollout not finished", LastTransitionTime: metav1.Time{Time: t0}}}
	return st
}

// annotated notes on d that cvmanager wrote image into container app.
func annotated(d *appsv1.Deployment, image string) *appsv1.Deployment {
	d.Annotations = map[string]string{workload.AnnotationImagePrefix + "app": image}
	return d
}

func driftReason(st cvv1.ContainerVersionStatus) string {
	if c := findCondition(st.Conditions, cvv1.ConditionDrifted); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason
	}
	return ""
}

// rollingOut is the status of a CV rolling v2 out from v1.
func rollingOut(started time.Time) cvv1.ContainerVersionStatus {
	st := deployed()
	st.CurrVersion, st.CurrDigest, st.CurrStatus = "v2", digest2, cvv1.StatusProgressing
	st.Rollout = &cvv1.RolloutStatus{Version: "v2", Digest: digest2, FromVersion: "v1", FromDigest: digest1,
		Trigger: history.TriggerPoll, StartTime: metav1.Time{Time: started}, Step: rollout.StepMigrated}
	return st
}

func TestSyncTransitions(t *testing.T) {
	v1, v2 := pinned("v1", digest1), pinned("v2", digest2)
	for _, tc := range []struct {
		name      string
		resolved  poller.ResolvedImage
		cv        *cvv1.ContainerVersion
		requests  []runtime.Object
		workload  *appsv1.Deployment
		wantCV    []string
		wantKube  []string
		wantPhase string // CurrStatus written last
		wantRoll  bool   // a rollout is still recorded
		wantTrig  string // trigger of the recorded rollout
		wantDrift string // reason of a Drifted=True condition
		wantFail  string // FailedDigest written
		wantHist  []string
		wantEvent []string
	}{{
		name:     "sync: a moved tag writes the intent, then patches from the object the write returned",
		resolved: poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv:       webCV(neverPolled()),
		workload: webDeployment(v1, true),
		// One status write (the intent), then the patch (TestIntentIsDurableBeforeThePatch
		// checks the order); no history is read (no promote request).
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"patch deployments web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true,
		wantEvent: []string{ReasonRolloutStarted},
	}, {
		name:     "advance: the recorded intent patches the workload, nothing else is written",
		cv:       webCV(rollingOut(t0.Add(-time.Second))),
		workload: webDeployment(v1, true),
		wantKube: []string{"patch deployments web"},
	}, {
		name:      "sync: an unchanged tag records the poll only",
		resolved:  poller.ResolvedImage{Digest: digest1, Version: "v1"},
		cv:        webCV(neverPolled()),
		workload:  webDeployment(v1, true),
		wantCV:    []string{"update containerversions/status web"},
		wantPhase: cvv1.StatusSuccess,
	}, {
		name:     "sync: a poll not yet due does nothing",
		resolved: poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv:       webCV(polled()),
		workload: webDeployment(v1, true),
	}, {
		name:     "advance: workloads not ready yet wait, nothing written",
		cv:       webCV(rollingOut(t0.Add(-10 * time.Second))),
		workload: webDeployment(v2, false),
	}, {
		name:      "judge: ready workloads finish the rollout",
		cv:        webCV(rollingOut(t0.Add(-10 * time.Second))),
		workload:  webDeployment(v2, true),
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"get configmaps web.history", "create configmaps web.history"},
		wantPhase: cvv1.StatusSuccess,
		wantHist:  []string{history.OutcomeSuccess + " " + history.TriggerPoll},
		wantEvent: []string{ReasonRolloutSucceeded},
	}, {
		name:      "fail: a timed-out rollout without rollback marks the digest failed",
		cv:        webCV(rollingOut(t0.Add(-10 * time.Minute))),
		workload:  webDeployment(v2, false),
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"get configmaps web.history", "create configmaps web.history"},
		wantPhase: cvv1.StatusFailed, wantFail: digest2,
		wantHist:  []string{history.OutcomeFailed + " " + history.TriggerPoll},
		wantEvent: []string{ReasonRolloutFailed},
	}, {
		name: "rollback: a timed-out rollout with rollback records the intent to roll back first",
		cv: webCV(rollingOut(t0.Add(-10*time.Minute)), func(s *cvv1.ContainerVersionSpec) {
			s.Rollback.Enabled = true
		}),
		workload:  webDeployment(v2, false),
		wantCV:    []string{"update containerversions/status web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true,
	}, {
		name:     "rollback: the recorded intent patches v1 back",
		cv:       webCV(rollingBack(t0.Add(-10*time.Minute)), func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }),
		workload: webDeployment(v2, false),
		wantKube: []string{"patch deployments web"},
	}, {
		name:      "rollback: once v1 runs again the rollout is recorded as rolled back",
		cv:        webCV(rollingBack(t0.Add(-10*time.Minute)), func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }),
		workload:  webDeployment(v1, true),
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"get configmaps web.history", "create configmaps web.history"},
		wantPhase: cvv1.StatusFailed, wantFail: digest2,
		wantHist:  []string{history.OutcomeRolledBack + " " + history.TriggerPoll},
		wantEvent: []string{ReasonRolloutFailed, ReasonRolledBack},
	}, {
		name:     "drift: a changed image starts a restore through the strategy",
		cv:       webCV(polled()),
		workload: annotated(webDeployment(repo+":v0", true), v1),
		wantCV:   []string{"update containerversions/status web"},
		wantKube: []string{"patch deployments web"},
		// Rollout recorded from v1 to v1 with trigger drift.
		wantPhase: cvv1.StatusProgressing, wantRoll: true, wantTrig: history.TriggerDrift,
		wantEvent: []string{ReasonDriftDetected, ReasonRolloutStarted},
	}, {
		name:      "drift: restored drift is recorded in history with trigger drift",
		cv:        webCV(restoring()),
		workload:  annotated(webDeployment(v1, true), v1),
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"get configmaps web.history", "create configmaps web.history"},
		wantPhase: cvv1.StatusSuccess,
		wantHist:  []string{history.OutcomeSuccess + " " + history.TriggerDrift},
		wantEvent: []string{ReasonDriftRestored, ReasonRolloutSucceeded},
	}, {
		name: "drift: driftPolicy Report sets Drifted and touches nothing",
		cv: webCV(polled(), func(s *cvv1.ContainerVersionSpec) {
			s.DriftPolicy = cvv1.DriftReport
		}),
		workload:  annotated(webDeployment(repo+":v0", true), v1),
		wantCV:    []string{"update containerversions/status web"},
		wantPhase: cvv1.StatusSuccess, wantDrift: ReasonDriftDetected,
		wantEvent: []string{ReasonDriftDetected},
	}, {
		name:      "join: a workload cvmanager never wrote gets the deployed digest",
		cv:        webCV(polled()),
		workload:  webDeployment(repo+":v0", true),
		wantCV:    []string{"update containerversions/status web"},
		wantKube:  []string{"patch deployments web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true, wantTrig: history.TriggerJoin,
		wantEvent: []string{ReasonWorkloadJoined, ReasonRolloutStarted},
	}, {
		name: "leave: a workload that no longer matches is left alone",
		cv:   webCV(polled()),
		workload: func() *appsv1.Deployment {
			d := annotated(webDeployment(repo+":v0", true), v1)
			d.Labels = map[string]string{"app": "other"}
			return d
		}(),
	}, {
		name:      "request: a trigger from any replica polls at once; the request is deleted after the status write",
		resolved:  poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv:        webCV(polled()),
		requests:  []runtime.Object{request("web-a", cvv1.RequestPoll, history.TriggerAPI)},
		workload:  annotated(webDeployment(v1, true), v1),
		wantCV:    []string{"update containerversions/status web", "delete containerversionrequests web-a"},
		wantKube:  []string{"patch deployments web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true, wantTrig: history.TriggerAPI,
		wantEvent: []string{ReasonRolloutStarted},
	}, {
		name:     "request: clear-failed forgets the failed digest and polls, in one status write",
		resolved: poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv: webCV(func() cvv1.ContainerVersionStatus {
			s := polled()
			s.FailedDigest = digest2
			return s
		}()),
		requests:  []runtime.Object{request("web-b", cvv1.RequestClearFailed, history.TriggerClearFailed)},
		workload:  annotated(webDeployment(v1, true), v1),
		wantCV:    []string{"update containerversions/status web", "delete containerversionrequests web-b"},
		wantKube:  []string{"patch deployments web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true, wantTrig: history.TriggerClearFailed,
		wantEvent: []string{ReasonRolloutStarted},
	}, {
		name:     "request: a trigger finding the tag unchanged starts nothing, writes no status, and is deleted",
		resolved: poller.ResolvedImage{Digest: digest1, Version: "v1"},
		cv:       webCV(polled()),
		requests: []runtime.Object{request("web-c", cvv1.RequestPoll, history.TriggerWebhook)},
		workload: annotated(webDeployment(v1, true), v1),
		wantCV:   []string{"delete containerversionrequests web-c"},
	}, {
		name:      "request: cvmanager promote's request reads the promotion record, and only it does",
		resolved:  poller.ResolvedImage{Digest: digest2, Version: "v2"},
		cv:        webCV(polled()),
		requests:  []runtime.Object{request("web-p", cvv1.RequestPoll, history.TriggerPromote)},
		workload:  annotated(webDeployment(v1, true), v1),
		wantCV:    []string{"update containerversions/status web", "delete containerversionrequests web-p"},
		wantKube:  []string{"get configmaps web.history", "patch deployments web"},
		wantPhase: cvv1.StatusProgressing, wantRoll: true, wantTrig: history.TriggerPromote,
		wantEvent: []string{ReasonRolloutStarted},
	}, {
		name:     "request: a request arriving during a rollout waits for it to finish",
		cv:       webCV(rollingOut(t0.Add(-10 * time.Second))),
		requests: []runtime.Object{request("web-d", cvv1.RequestPoll, history.TriggerAPI)},
		workload: webDeployment(v2, false),
	}, {
		name:     "drift: nothing to do when every workload runs the deployed image",
		cv:       webCV(polled()),
		workload: annotated(webDeployment(v1, true), v1),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, tc.resolved, append([]runtime.Object{tc.cv}, tc.requests...), tc.workload)
			f.sync("web")
			if diff := cmp.Diff(tc.wantCV, actions(f.cvs)); diff != "" {
				t.Errorf("CV actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantKube, actions(f.kube)); diff != "" {
				t.Errorf("kube actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvent, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if tc.wantPhase == "" {
				return
			}
			st := f.lastStatus()
			if st.CurrStatus != tc.wantPhase || (st.Rollout != nil) != tc.wantRoll || st.FailedDigest != tc.wantFail {
				t.Errorf("status: currStatus %q rollout %v failedDigest %q; want %q %v %q",
					st.CurrStatus, st.Rollout != nil, st.FailedDigest, tc.wantPhase, tc.wantRoll, tc.wantFail)
			}
			if st.Rollout != nil && st.Rollout.Trigger != tc.wantTrig && tc.wantTrig != "" {
				t.Errorf("rollout trigger %q, want %q", st.Rollout.Trigger, tc.wantTrig)
			}
			if got := driftReason(st); got != tc.wantDrift {
				t.Errorf("Drifted reason %q, want %q", got, tc.wantDrift)
			}
			var hist []string
			if len(tc.wantHist) > 0 {
				for _, r := range f.history() {
					hist = append(hist, r.Outcome+" "+r.Trigger)
				}
			}
			if diff := cmp.Diff(tc.wantHist, hist); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDriftFightStopsAndNamesTheOtherWriter: after FightCorrections
// corrections within FightWindow the next drift is not corrected; the
// Drifted condition names the other field manager, and later syncs keep
// reporting instead of restoring.
func TestDriftFightStopsAndNamesTheOtherWriter(t *testing.T) {
	d := annotated(webDeployment(repo+":v0", true), pinned("v1", digest1))
	d.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "cvmanager", Operation: metav1.ManagedFieldsOperationUpdate, Time: &metav1.Time{Time: t0.Add(-time.Minute)}},
		{Manager: "argocd-controller", Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: t0.Add(-time.Second)}},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: &metav1.Time{Time: t0}},
	}
	f := newFixture(t, poller.ResolvedImage{}, webCV(polled()), d)
	for i := 0; i < FightCorrections; i++ {
		f.c.corrections.note(ns+"/web", t0.Add(-time.Duration(i)*time.Minute))
	}
	f.sync("web")
	if diff := cmp.Diff([]string{"update containerversions/status web"}, actions(f.cvs)); diff != "" {
		t.Errorf("CV actions (-want +got):\n%s", diff)
	}
	if got := actions(f.kube); len(got) != 0 {
		t.Errorf("a fight must not touch the workload: %v", got)
	}
	st := f.lastStatus()
	cond := findCondition(st.Conditions, cvv1.ConditionDrifted)
	if cond == nil || cond.Reason != ReasonDriftFight || !strings.Contains(cond.Message, `"argocd-controller"`) {
		t.Fatalf("Drifted condition %+v, want DriftFight naming argocd-controller", cond)
	}
	if diff := cmp.Diff([]string{ReasonDriftFight}, f.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if st.Rollout != nil {
		t.Errorf("a fight started a rollout: %+v", st.Rollout)
	}
}

func TestCorrectionsCountWithinTheWindow(t *testing.T) {
	var c corrections
	for i := 0; i < FightCorrections; i++ {
		if c.wouldFight("ns/a", t0.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("correction %d already a fight", i+1)
		}
		c.note("ns/a", t0.Add(time.Duration(i)*time.Minute))
	}
	if !c.wouldFight("ns/a", t0.Add(5*time.Minute)) {
		t.Error("correction after FightCorrections within the window: want a fight")
	}
	if c.wouldFight("ns/a", t0.Add(FightWindow+3*time.Minute)) {
		t.Error("corrections older than the window still counted")
	}
}

// TestRequestsAreObjectsOwnedByTheCV: any replica records a request as an
// object of its own, owned by the CV, and never writes the CV itself.
func TestRequestsAreObjectsOwnedByTheCV(t *testing.T) {
	f := newFixture(t, poller.ResolvedImage{}, webCV(polled()), webDeployment(pinned("v1", digest1), true))
	ctx := context.Background()
	generated := 0
	f.cvs.PrependReactor("create", "containerversionrequests", func(a core.Action) (bool, runtime.Object, error) {
		obj := a.(core.CreateAction).GetObject().(*cvv1.ContainerVersionRequest)
		generated++
		obj.Name = fmt.Sprintf("%s%d", obj.GenerateName, generated) // as the apiserver does with generateName
		return false, nil, nil
	})
	requests := NewRequests(f.cvs, f.clock)
	if err := requests.TriggerPollDigest(ctx, ns, "web", history.TriggerWebhook, digest2); err != nil {
		t.Fatal(err)
	}
	if err := requests.ClearFailed(ctx, ns, "web"); err != nil {
		t.Fatal(err)
	}
	if err := requests.TriggerPoll(ctx, ns, "absent", history.TriggerAPI); !apierrors.IsNotFound(err) {
		t.Errorf("request for a missing CV: got %v, want NotFound", err)
	}
	list, err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list.Items {
		owner := metav1.GetControllerOf(&r)
		if owner == nil || owner.Name != "web" || owner.Kind != "ContainerVersion" {
			t.Errorf("request %+v not owned by the CV", r.ObjectMeta)
		}
		got = append(got, r.Spec.Action+" "+r.Spec.Trigger+" "+r.Spec.Digest)
	}
	// The CV has no failed digest: clear-failed has nothing to forget and
	// asks for a poll (stampClearFailed).
	want := []string{"Poll webhook " + digest2, "Poll clear-failed "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, a := range f.cvs.Actions() {
		if a.GetResource().Resource == "containerversions" && a.GetVerb() != "get" {
			t.Errorf("a request wrote the CV: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// TestCheckLeaseNamesWhyTheLeaseCannotBeTaken: a missing namespace (or a
// forbidden one) is reported at once instead of retried forever.
func TestCheckLeaseNamesWhyTheLeaseCannotBeTaken(t *testing.T) {
	kube := kubefake.NewClientset()
	le := LeaderElection{Enabled: true, Namespace: "absent", Name: "cvmanager"}
	if err := CheckLease(context.Background(), kube, le); err != nil {
		t.Fatalf("a Lease that can be created: %v", err)
	}
	kube.PrependReactor("create", "leases", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "absent")
	})
	if err := CheckLease(context.Background(), kube, le); !apierrors.IsNotFound(err) {
		t.Errorf("missing namespace: got %v, want NotFound", err)
	}
}

// enforceResourceVersion makes the fake CV clientset answer status writes
// as the apiserver does: a write carrying another resourceVersion than the
// stored one is a conflict, and every accepted write moves it on.
func enforceResourceVersion(t *testing.T, cvs *cvfake.Clientset) {
	gvr := cvv1.SchemeGroupVersion.WithResource("containerversions")
	cvs.PrependReactor("update", "containerversions", func(a core.Action) (bool, runtime.Object, error) {
		obj := a.(core.UpdateAction).GetObject().(*cvv1.ContainerVersion).DeepCopy()
		stored, err := cvs.Tracker().Get(gvr, obj.Namespace, obj.Name)
		if err != nil {
			return true, nil, err
		}
		current := stored.(*cvv1.ContainerVersion).ResourceVersion
		if obj.ResourceVersion != current {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), obj.Name, fmt.Errorf("stored %s, written %s", current, obj.ResourceVersion))
		}
		n, _ := strconv.Atoi(current)
		obj.ResourceVersion = strconv.Itoa(n + 1)
		return true, obj, cvs.Tracker().Update(gvr, obj, obj.Namespace)
	})
}

// finishedOverStaleCopy is a fixture whose rollout its first sync finished,
// moving the CV's resourceVersion from 1 to 2 as the apiserver would, and
// the CV as the cache held it before that write.
func finishedOverStaleCopy(t *testing.T) (*fixture, *cvv1.ContainerVersion) {
	t.Helper()
	cv := webCV(rollingOut(t0.Add(-10 * time.Second)))
	cv.ResourceVersion = "1"
	f := newFixture(t, poller.ResolvedImage{}, cv, webDeployment(pinned("v2", digest2), true))
	enforceResourceVersion(t, f.cvs)
	stale, err := f.c.cvLister.ContainerVersions(ns).Get("web")
	if err != nil {
		t.Fatal(err)
	}
	f.sync("web")
	return f, stale
}

// TestStaleSyncCannotFinishARolloutTwice: a sync whose cache lags behind a
// rollout this controller just finished plans the same finish again. Its
// status write carries the stale resourceVersion and fails with a conflict;
// nothing follows it: one Succeeded Event, one history record.
func TestStaleSyncCannotFinishARolloutTwice(t *testing.T) {
	f, stale := finishedOverStaleCopy(t)
	ctx := context.Background()
	snap, err := f.c.observe(ctx, f.c.syncerFor(ns+"/web"), stale)
	if err != nil {
		t.Fatal(err)
	}
	d := plan(snap)
	if d.cv.Status.CurrStatus != cvv1.StatusSuccess {
		t.Fatalf("the stale snapshot should plan the finish again, planned %q", d.cv.Status.CurrStatus)
	}
	if err := f.c.apply(ctx, snap, d); !apierrors.IsConflict(err) {
		t.Fatalf("stale status write: got %v, want a conflict (the key is retried from the fresh cache)", err)
	}
	if diff := cmp.Diff([]string{ReasonRolloutSucceeded}, f.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := len(f.history()); n != 1 {
		t.Errorf("%d history records, want 1", n)
	}
	if got, _ := f.c.metrics.RolloutsTotal.GetMetricWithLabelValues(history.OutcomeSuccess); testutil.ToFloat64(got) != 1 {
		t.Errorf("rollouts counted %v times, want once", testutil.ToFloat64(got))
	}
}

// TestASyncBeforeItsOwnStatusEchoWritesNothing: a sync that runs while the
// CV cache still holds the object this controller's status write replaced
// (a Deployment's event outran the CV's echo) plans from that object. It is
// skipped, where its status write would have been refused with a conflict
// and retried.
func TestASyncBeforeItsOwnStatusEchoWritesNothing(t *testing.T) {
	f, stale := finishedOverStaleCopy(t)
	cvCache := f.inf.CVs.Informer().GetIndexer()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cached, err := f.c.cvLister.ContainerVersions(ns).Get("web")
		if err == nil && cached.ResourceVersion == "2" {
			break // the echo is in; the stale object put back below stays
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never showed the status write")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cvCache.Update(stale); err != nil {
		t.Fatal(err)
	}
	f.cvs.ClearActions()
	f.sync("web") // without the skip: a conflict, and f.sync fails
	if got := actions(f.cvs); len(got) != 0 {
		t.Errorf("a sync on the replaced object wrote: %v", got)
	}
	if n := len(f.history()); n != 1 {
		t.Errorf("%d history records, want 1", n)
	}
}

// TestLeaderTakesRequestsInMemory: on the leader a trigger is taken in
// memory and acted on by the next sync, with no request object written; a
// standby writes the object the leader will act on.
func TestLeaderTakesRequestsInMemory(t *testing.T) {
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, webCV(polled()),
		annotated(webDeployment(pinned("v1", digest1), true), pinned("v1", digest1)))
	ctx := context.Background()
	requests := NewRequests(f.cvs, f.clock)
	requests.Local = f.c
	f.c.SetLeading(func() bool { return false })
	if err := requests.TriggerPoll(ctx, ns, "web", history.TriggerAPI); err != nil {
		t.Fatal(err)
	}
	if got := actions(f.cvs); len(got) != 2 || got[1] != "create containerversionrequests" {
		t.Fatalf("a standby must write the request: %v", got)
	}
	if err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cvs.ClearActions()
	f.c.SetLeading(func() bool { return true })
	if err := requests.TriggerPoll(ctx, ns, "web", history.TriggerAPI); err != nil {
		t.Fatal(err)
	}
	if got := actions(f.cvs); len(got) != 0 {
		t.Fatalf("the leader wrote for an in-memory request: %v", got)
	}
	f.sync("web")
	st := f.lastStatus()
	if st.Rollout == nil || st.Rollout.Trigger != history.TriggerAPI {
		t.Fatalf("the in-memory trigger did not start a rollout: %+v", st.Rollout)
	}
	if left := f.c.local.of(ns + "/web"); len(left) != 0 {
		t.Errorf("in-memory request still pending after it was served: %d", len(left))
	}
}

// TestALeaderStoppingHandsItsInMemoryRequestsOver: a request the leader
// took in memory and had not acted on when it stopped becomes a request
// object, owned by its CV, which the next leader serves as any other.
func TestALeaderStoppingHandsItsInMemoryRequestsOver(t *testing.T) {
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, webCV(polled()),
		annotated(webDeployment(pinned("v1", digest1), true), pinned("v1", digest1)))
	ctx := context.Background()
	requests := NewRequests(f.cvs, f.clock)
	requests.Local = f.c
	f.c.SetLeading(func() bool { return true })
	if err := requests.TriggerPoll(ctx, ns, "web", history.TriggerAPI); err != nil {
		t.Fatal(err)
	}
	f.c.handOver()
	list, err := f.cvs.CvmanagerV1alpha1().ContainerVersionRequests(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d request objects after the hand-over, want 1", len(list.Items))
	}
	req := list.Items[0]
	if req.Spec.ContainerVersion != "web" || req.Spec.Action != cvv1.RequestPoll || req.Spec.Trigger != history.TriggerAPI ||
		len(req.OwnerReferences) != 1 || req.OwnerReferences[0].UID != "uid-web" {
		t.Errorf("handed-over request %+v (owners %+v), want a poll of web for api, owned by the CV", req.Spec, req.OwnerReferences)
	}
	if left := f.c.local.of(ns + "/web"); len(left) != 0 {
		t.Errorf("%d requests still in memory after the hand-over", len(left))
	}

	next, _ := f.newController(poller.ResolvedImage{Digest: digest2, Version: "v2"}, nil)
	if err := next.sync(ctx, ns+"/web"); err != nil {
		t.Fatal(err)
	}
	st := f.lastStatus()
	if st.Rollout == nil || st.Rollout.Trigger != history.TriggerAPI {
		t.Fatalf("the next leader did not serve the handed-over request: rollout %+v", st.Rollout)
	}
}

// TestIntentIsDurableBeforeThePatch: the workload patch of a new rollout
// follows the status write that records its intent, never precedes it,
// across the two clientsets.
func TestIntentIsDurableBeforeThePatch(t *testing.T) {
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, webCV(neverPolled()), webDeployment(pinned("v1", digest1), true))
	var order []string
	record := func(what string) core.ReactionFunc {
		return func(core.Action) (bool, runtime.Object, error) {
			order = append(order, what)
			return false, nil, nil
		}
	}
	f.cvs.PrependReactor("update", "containerversions", record("status"))
	f.kube.PrependReactor("patch", "deployments", record("patch"))
	f.sync("web")
	if diff := cmp.Diff([]string{"status", "patch"}, order); diff != "" {
		t.Errorf("order of writes (-want +got):\n%s", diff)
	}
}
