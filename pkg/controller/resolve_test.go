package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// recordingResolver answers digest-only requests with digest (or err) and
// version requests with the next of versioned (then digest), recording
// which requests asked for a version.
type recordingResolver struct {
	digest    string
	versioned []string
	err       error
	asked     []bool // per call: was a versionSyntax given
	providers []string
	digests   []string // per call: the digest passed in
}

func (r *recordingResolver) Resolve(_ context.Context, req poller.ResolveRequest) (poller.ResolvedImage, error) {
	r.asked = append(r.asked, req.VersionSyntax != nil)
	r.providers = append(r.providers, req.Provider)
	r.digests = append(r.digests, req.Digest)
	if req.VersionSyntax != nil && req.MaxAge <= 0 {
		return poller.ResolvedImage{}, errors.New("the version request must accept the answer just fetched")
	}
	digest := r.digest
	if req.VersionSyntax != nil && len(r.versioned) > 0 {
		digest, r.versioned = r.versioned[0], r.versioned[1:]
	}
	return poller.ResolvedImage{Digest: digest, Version: "v2"}, r.err
}

func TestResolveAsksForTheVersionOnlyForARollout(t *testing.T) {
	syntax := regexp.MustCompile(`^v[0-9]+$`)
	deployed := cvv1.ContainerVersionStatus{CurrDigest: "sha256:old", CurrStatus: cvv1.StatusSuccess}
	for _, tc := range []struct {
		name      string
		digest    string
		versioned []string
		err       error
		syntax    *regexp.Regexp
		forced    bool
		want      []bool
	}{
		{"digest unchanged: one request, no version", "sha256:old", nil, nil, syntax, false, []bool{false}},
		{"digest moved: then the version", "sha256:new", nil, nil, syntax, false, []bool{false, true}},
		{"version answer older than the digest: asked again", "sha256:new", []string{"sha256:old"}, nil, syntax, false, []bool{false, true, true}},
		{"no versionSyntax: one request", "sha256:new", nil, nil, nil, false, []bool{false}},
		{"registry error: no second request", "", nil, errors.New("down"), syntax, false, []bool{false}},
		{"forced: the version at once", "sha256:new", nil, nil, syntax, true, []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recordingResolver{digest: tc.digest, versioned: tc.versioned, err: tc.err}
			c := &Controller{
				opts:      Options{Resolver: r},
				clock:     clocktesting.NewFakeClock(time.Unix(1000, 0)),
				workloads: workload.NewListers(informers.NewSharedInformerFactory(fake.NewClientset(), 0), nil),
			}
			cv := &cvv1.ContainerVersion{Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/app", Tag: "env-prod"}, Status: deployed}
			_, _ = c.resolve(context.Background(), cv, nil, tc.syntax, time.Minute, tc.forced)
			if diff := cmp.Diff(tc.want, r.asked); diff != "" {
				t.Errorf("requests asking for a version (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVersionIsAskedForTheDigestSeen: the version step passes the digest
// the digest-only step returned, so the registry layer does not HEAD the
// tag again; the retry after an answer that differs (a registry that
// resolves the tag anyway) passes none.
func TestVersionIsAskedForTheDigestSeen(t *testing.T) {
	r := &recordingResolver{digest: "sha256:new", versioned: []string{"sha256:older"}}
	c := &Controller{opts: Options{Resolver: r}, clock: clocktesting.NewFakeClock(time.Unix(1000, 0)),
		workloads: workload.NewListers(informers.NewSharedInformerFactory(fake.NewClientset(), 0), nil)}
	cv := &cvv1.ContainerVersion{Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/app", Tag: "env-prod"},
		Status: cvv1.ContainerVersionStatus{CurrDigest: "sha256:old", CurrStatus: cvv1.StatusSuccess}}
	_, _ = c.resolve(context.Background(), cv, nil, regexp.MustCompile(`^v[0-9]+$`), time.Minute, false)
	if diff := cmp.Diff([]string{"", "sha256:new", ""}, r.digests); diff != "" {
		t.Errorf("digests passed (-want +got):\n%s", diff)
	}
}

// TestResolvePassesTheCVsProvider: spec.provider reaches the registry
// layer, which picks the cloud identity from it.
func TestResolvePassesTheCVsProvider(t *testing.T) {
	r := &recordingResolver{digest: "sha256:old"}
	c := &Controller{opts: Options{Resolver: r}, clock: clocktesting.NewFakeClock(time.Unix(1000, 0)),
		workloads: workload.NewListers(informers.NewSharedInformerFactory(fake.NewClientset(), 0), nil)}
	for _, p := range []string{"", "GCP", "Azure"} {
		cv := &cvv1.ContainerVersion{Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/app", Tag: "env-prod", Provider: p}}
		_, _ = c.resolve(context.Background(), cv, nil, nil, time.Minute, false)
	}
	if diff := cmp.Diff([]string{"", "GCP", "Azure"}, r.providers); diff != "" {
		t.Errorf("providers asked for (-want +got):\n%s", diff)
	}
}

func TestTriggerTimesMaxAge(t *testing.T) {
	var tt triggerTimes
	t0 := time.Unix(1000, 0)
	if got := tt.maxAge("ns/a", t0); got != 0 {
		t.Errorf("no trigger: maxAge %s, want 0 (a request of its own)", got)
	}
	tt.note("ns/a", t0)
	tt.note("ns/a", t0.Add(time.Second)) // the earlier pending trigger wins
	if got := tt.maxAge("ns/a", t0.Add(3*time.Second)); got != 3*time.Second {
		t.Errorf("maxAge %s, want 3s (answers fetched after the trigger arrived)", got)
	}
	if got := tt.maxAge("ns/a", t0.Add(4*time.Second)); got != 0 {
		t.Errorf("consumed trigger: maxAge %s, want 0", got)
	}
}

// failingResolver answers every resolve with err.
type failingResolver struct{ err error }

func (r failingResolver) Resolve(context.Context, poller.ResolveRequest) (poller.ResolvedImage, error) {
	return poller.ResolvedImage{}, r.err
}

// TestPollPacedByTheBudgetIsRetriedSoon: a poll the controller's own
// request budget refuses reports nothing (no Degraded condition, no status
// write) and is tried again once the budget has a token, within half an
// interval, not one interval later. A host the registry closed (429) is
// still reported.
func TestPollPacedByTheBudgetIsRetriedSoon(t *testing.T) {
	until := t0.Add(3 * time.Second)
	for _, tc := range []struct {
		name       string
		err        error
		wantWrites []string
		wantNext   func(next time.Time) bool
	}{{
		name:     "budget spent: retried within half an interval of the next token, nothing written",
		err:      &poller.ErrHostClosed{Host: "http://reg.example", Until: until, Reason: "request budget exhausted", Budget: true},
		wantNext: func(next time.Time) bool { return !next.Before(until) && next.Before(until.Add(time.Minute)) },
	}, {
		name:       "rate limited by the registry: reported, next poll one interval later",
		err:        &poller.ErrHostClosed{Host: "http://reg.example", Until: until, Reason: "rate limited (429)"},
		wantWrites: []string{"update containerversions/status web"},
		wantNext:   func(next time.Time) bool { return next.Equal(t0.Add(10 * time.Minute)) },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			st := polled()
			st.LastPolled = nil // never polled by this process: due now
			cv := webCV(st)
			cv.Spec.PollIntervalSeconds = 600
			f := newFixture(t, poller.ResolvedImage{}, cv, webDeployment(pinned("v1", digest1), true))
			f.c.opts.Resolver = failingResolver{err: fmt.Errorf("cannot resolve: %w", tc.err)}
			f.sync("web")
			if diff := cmp.Diff(tc.wantWrites, actions(f.cvs)); diff != "" {
				t.Errorf("CV writes (-want +got):\n%s", diff)
			}
			if next := f.c.syncerFor(ns + "/web").next; !tc.wantNext(next) {
				t.Errorf("next poll at %s (t0 + %s)", next, next.Sub(t0))
			}
		})
	}
}
