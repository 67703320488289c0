package controller

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/digestcache"
	"cvmanager.dev/cvmanager/pkg/fleet"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/gen"
)

// The tests below run automatic promotion (spec.promotion.from) through
// the controller: the target web in this cluster runs v1 and follows web
// in namespace staging of another cluster, which runs v2 (digest2). The
// other cluster is a fake clientset the observer reads as the real Reader
// does (fleet.ReadWith, one GET), through the kubeconfig Secret "staging".

const sourceKubeconfig = "kubeconfig of the source cluster"

// newFollowerFixture builds that world; the source has been Success on v2
// since since, and the target wants minSoak of it. The source's first
// read is made before any sync, so every sync acts on an answer.
func newFollowerFixture(t *testing.T, since time.Time, minSoak int32, edit ...func(*cvv1.ContainerVersionSpec)) *fixture {
	t.Helper()
	return newFollowerFixtureOf(t, sourceSince(since), minSoak, edit...)
}

// sourceSince is the status of a source that has been Success on v2 since since.
func sourceSince(since time.Time) cvv1.ContainerVersionStatus {
	return cvv1.ContainerVersionStatus{CurrVersion: "v2", CurrDigest: digest2, CurrStatus: cvv1.StatusSuccess,
		SuccessVersion: "v2", SuccessDigest: digest2, CurrStatusTime: &metav1.Time{Time: since}}
}

// newFollowerFixtureOf is newFollowerFixture with the source's status.
func newFollowerFixtureOf(t *testing.T, sourceStatus cvv1.ContainerVersionStatus, minSoak int32, edit ...func(*cvv1.ContainerVersionSpec)) *fixture {
	t.Helper()
	v1Image := pinned("v1", digest1)
	return newFollowerFixtureAt(t, polled(), annotated(webDeployment(v1Image, true), v1Image), sourceStatus, minSoak, edit...)
}

// newFollowerFixtureAt is newFollowerFixtureOf with the target's status
// and its workload.
func newFollowerFixtureAt(t *testing.T, targetStatus cvv1.ContainerVersionStatus, workload *appsv1.Deployment,
	sourceStatus cvv1.ContainerVersionStatus, minSoak int32, edit ...func(*cvv1.ContainerVersionSpec)) *fixture {
	t.Helper()
	from := cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: "staging"},
		Namespace: "staging", Name: "web", MinSoakSeconds: &minSoak}
	cv := webCV(targetStatus, append([]func(*cvv1.ContainerVersionSpec){func(s *cvv1.ContainerVersionSpec) {
		s.Promotion = &cvv1.PromotionSpec{From: from}
	}}, edit...)...)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "staging", Namespace: ns},
		Data: map[string][]byte{fleet.DefaultKubeconfigKey: []byte(sourceKubeconfig)}}
	f := newFixture(t, poller.ResolvedImage{}, cv, workload, secret)

	source := gen.NewCV("staging", "web", repo)
	source.Status = sourceStatus
	sourceCluster := cvfake.NewSimpleClientset(source)
	observer := fleet.NewObserver()
	observer.Clock = f.clock
	observer.Read = func(ctx context.Context, _ []byte, namespace, name string) (*cvv1.ContainerVersion, error) {
		return fleet.ReadWith(ctx, sourceCluster, namespace, name)
	}
	f.c.opts.Fleet = observer
	f.c.opts.Kubeconfigs = &fleet.KubeconfigSecrets{Kube: f.kube, Clock: f.clock}
	read := make(chan struct{})
	observer.Request(context.Background(), ns+"/web", []byte(sourceKubeconfig), &from, func() { close(read) })
	<-read
	return f
}

// awaitEcho waits until the CV cache holds the status last written for
// name (the write's watch event), so that the next sync plans from it.
func (f *fixture) awaitEcho(name string) {
	f.t.Helper()
	want, written := f.statusOf(name), false
	for _, a := range f.cvs.Actions() {
		written = written || a.GetVerb() == "update" && a.GetSubresource() == "status"
	}
	if !written {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if cv, err := f.c.cvLister.ContainerVersions(ns).Get(name); err == nil && equality.Semantic.DeepEqual(cv.Status, want) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the cache never showed the status written for %s", name)
		}
	}
}

// patches lists the workload writes made since the actions were cleared.
func patches(f *fixture) []string {
	var out []string
	for _, a := range actions(f.kube) {
		if strings.HasPrefix(a, "patch ") || strings.HasPrefix(a, "update deployments") {
			out = append(out, a)
		}
	}
	return out
}

// releaseBlocked is the ReleaseBlocked condition when it is True.
func releaseBlocked(st cvv1.ContainerVersionStatus) *metav1.Condition {
	if c := findCondition(st.Conditions, cvv1.ConditionReleaseBlocked); c != nil && c.Status == metav1.ConditionTrue {
		return c
	}
	return nil
}

func minAge(d time.Duration) func(*cvv1.ContainerVersionSpec) {
	return func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: d}}
	}
}

// waitAnswered waits for the background read of digest to be stored.
func waitAnswered[T any](t *testing.T, c *digestcache.Cache[T], digest string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, known := c.Lookup(digest); known {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read of %s was never stored", digest)
		}
	}
}

// TestPromotionWaitsForTheTargetsMinAge: the source's version has soaked,
// but its image was built an hour ago and the target's spec.policy.minAge
// is a day. The target is held (ReleaseBlocked MinAge, status.heldUntil at
// the build time plus a day), its workload untouched, and promoted once
// the clock reaches that time.
func TestPromotionWaitsForTheTargetsMinAge(t *testing.T) {
	const day = 24 * time.Hour
	built := t0.Add(-time.Hour)
	f := newFollowerFixture(t, t0.Add(-2*time.Hour), 3600, minAge(day))
	var provenanceReads atomic.Int32
	f.c.opts.Provenance = digestcache.New(func(_ context.Context, _ registry.Repo, digest string) (cvv1.Provenance, time.Time) {
		provenanceReads.Add(1)
		return cvv1.Provenance{Created: built.Format(time.RFC3339)}, time.Time{}
	})

	// The first sync asks for the provenance (the build time); until it is
	// read, minAge counts from the first sighting: now.
	f.sync("web")
	st := f.lastStatus()
	if st.Rollout != nil || st.HeldUntil == nil || !st.HeldUntil.Time.Equal(t0.Add(day)) {
		t.Fatalf("before the build time is known: rollout %+v heldUntil %v; want held until %s", st.Rollout, st.HeldUntil, t0.Add(day))
	}
	waitAnswered(t, f.c.opts.Provenance, digest2)
	f.awaitEcho("web")

	eligible := built.Add(day)
	f.sync("web")
	st = f.lastStatus()
	cond := releaseBlocked(st)
	if cond == nil || cond.Reason != cvv1.ReasonMinAge || !strings.Contains(cond.Message, eligible.Format(time.RFC3339)) {
		t.Fatalf("ReleaseBlocked %+v; want reason %s naming %s", cond, cvv1.ReasonMinAge, eligible.Format(time.RFC3339))
	}
	if st.Rollout != nil || st.HeldUntil == nil || !st.HeldUntil.Time.Equal(eligible) || st.AvailableDigest != digest2 || st.CurrDigest != digest1 {
		t.Fatalf("held: rollout %+v heldUntil %v available %s running %s; want no rollout, %s, %s, %s",
			st.Rollout, st.HeldUntil, st.AvailableDigest, st.CurrDigest, eligible, digest2, digest1)
	}
	if got := patches(f); len(got) != 0 {
		t.Fatalf("a digest held by minAge touched the workload: %v", got)
	}
	f.awaitEcho("web")

	f.clock.SetTime(eligible.Add(-time.Second))
	f.cvs.ClearActions()
	f.sync("web")
	if st := f.statusOf("web"); st.Rollout != nil {
		t.Fatalf("a second before the eligible time: rollout %+v", st.Rollout)
	}

	f.clock.SetTime(eligible)
	f.cvs.ClearActions()
	f.kube.ClearActions()
	f.sync("web")
	st = f.lastStatus()
	if st.Rollout == nil || st.Rollout.Digest != digest2 || st.Rollout.Trigger != history.TriggerPromote {
		t.Fatalf("at the eligible time: rollout %+v; want %s promoted", st.Rollout, digest2)
	}
	if st.HeldUntil != nil || releaseBlocked(st) != nil {
		t.Errorf("the hold was not cleared: heldUntil %v, %+v", st.HeldUntil, releaseBlocked(st))
	}
	if got := patches(f); len(got) != 1 || got[0] != "patch deployments web" {
		t.Errorf("workload writes %v; want the promoted digest patched in", got)
	}
	if n := provenanceReads.Load(); n != 1 {
		t.Errorf("provenance read %d times, want once", n)
	}
}

// TestASoakDoesNotDateTheFirstSighting: the target was held while its
// source soaked (status.heldUntil at the soak's end), having first seen
// the digest when that hold began (status.availableSince). When the soak
// ends, an image that states no build time is held by minAge counted from
// that first sighting: neither let through because status.heldUntil lies
// a soak after it, nor counted from the soak's end.
func TestASoakDoesNotDateTheFirstSighting(t *testing.T) {
	const day = 24 * time.Hour
	soakEnds := t0.Add(30 * time.Minute)
	f := newFollowerFixture(t, t0.Add(-30*time.Minute), 3600, minAge(day))
	f.sync("web")
	st := f.lastStatus()
	if cond := releaseBlocked(st); cond == nil || cond.Reason != cvv1.ReasonSoaking || st.HeldUntil == nil || !st.HeldUntil.Time.Equal(soakEnds) {
		t.Fatalf("while the source soaks: %+v heldUntil %v; want Soaking until %s", cond, st.HeldUntil, soakEnds)
	}
	if st.AvailableDigest != digest2 || st.AvailableSince == nil || !st.AvailableSince.Time.Equal(t0) {
		t.Fatalf("while the source soaks: available %s since %v; want %s since %s", st.AvailableDigest, st.AvailableSince, digest2, t0)
	}
	f.awaitEcho("web")

	f.clock.SetTime(soakEnds)
	f.sync("web")
	st = f.lastStatus()
	if st.Rollout != nil {
		t.Fatalf("promoted when the soak ended, under a day's minAge: %+v", st.Rollout)
	}
	if cond := releaseBlocked(st); cond == nil || cond.Reason != cvv1.ReasonMinAge || st.HeldUntil == nil || !st.HeldUntil.Time.Equal(t0.Add(day)) {
		t.Fatalf("after the soak: %+v heldUntil %v; want MinAge until %s", cond, st.HeldUntil, t0.Add(day))
	}
	if st.AvailableSince == nil || !st.AvailableSince.Time.Equal(t0) {
		t.Errorf("after the soak: availableSince %v, want the first sighting %s kept", st.AvailableSince, t0)
	}
	if got := patches(f); len(got) != 0 {
		t.Errorf("workload writes %v, want none", got)
	}
}

// indexReader serves an image index listing linux/<arch> for each arch.
type indexReader struct{ arches []string }

func (r indexReader) Manifest(context.Context, registry.Repo, string) (registry.Manifest, error) {
	var entries []v1.Descriptor
	for _, arch := range r.arches {
		entries = append(entries, v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 100,
			Digest: v1.Hash{Algorithm: "sha256", Hex: digest1[7:]}, Platform: &v1.Platform{OS: "linux", Architecture: arch}})
	}
	body, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: entries})
	return registry.Manifest{Body: body, Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex}}, err
}

func (indexReader) Blob(context.Context, registry.Repo, string, int64) ([]byte, error) {
	return nil, errors.New("not served")
}

func (indexReader) Referrers(context.Context, registry.Repo, string) ([]v1.Descriptor, error) {
	return nil, nil
}

// TestPromotionRefusesAnIndexWithoutTheNodesPlatform: the source's version
// has soaked, but its image is an arm64-only index and the target's nodes
// are amd64. While the index is read nothing is done; then the promotion
// is refused with PlatformMissing and the workload is never patched.
func TestPromotionRefusesAnIndexWithoutTheNodesPlatform(t *testing.T) {
	f := newFollowerFixture(t, t0.Add(-2*time.Hour), 3600)
	f.c.opts.Platforms = platform.NewCache(indexReader{arches: []string{"arm64"}})
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
		Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}); err != nil {
		t.Fatal(err)
	}
	f.c.nodes = corelisters.NewNodeLister(nodes)

	f.sync("web")
	if st := f.statusOf("web"); st.Rollout != nil {
		t.Fatalf("promoted before the index was read: %+v", st.Rollout)
	}
	waitAnswered(t, f.c.opts.Platforms, digest2)
	f.awaitEcho("web")

	f.sync("web")
	st := f.lastStatus()
	cond := releaseBlocked(st)
	if cond == nil || cond.Reason != cvv1.ReasonPlatformMissing || !strings.Contains(cond.Message, "no manifest for linux/amd64") {
		t.Fatalf("ReleaseBlocked %+v; want %s naming linux/amd64", cond, cvv1.ReasonPlatformMissing)
	}
	if st.Rollout != nil || st.AvailableDigest != digest2 || st.CurrDigest != digest1 {
		t.Errorf("refused: rollout %+v available %s running %s; want none, %s, %s", st.Rollout, st.AvailableDigest, st.CurrDigest, digest2, digest1)
	}
	if got := patches(f); len(got) != 0 {
		t.Errorf("a refused promotion touched the workload: %v", got)
	}
}

// sentNotifications collects the notifications a fixture's controller
// sends, through a webhook receiver on a test server.
type sentNotifications struct {
	t        *testing.T
	notifier *notify.Notifier
	receiver notify.Receiver
	got      chan notify.Event
}

// recordNotifications makes f's controller notify a test receiver of
// every event, delivered by one worker: in the order they were sent.
func (f *fixture) recordNotifications() *sentNotifications {
	f.t.Helper()
	s := &sentNotifications{t: f.t, notifier: notify.New(), got: make(chan notify.Event, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var e notify.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err == nil {
			s.got <- e
		}
	}))
	f.t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	s.notifier.Run(ctx, 1)
	s.receiver = notify.Receiver{Type: notify.TypeWebhook, URL: srv.URL}
	f.c.opts.Notifier, f.c.opts.DefaultNotifications = s.notifier, []notify.Route{{Receiver: s.receiver}}
	return s
}

// kinds are the kinds of the notifications sent so far, in order: a
// marker queued behind them comes back last, so none is still on its way.
func (s *sentNotifications) kinds() []string {
	s.t.Helper()
	const marker = "test-marker"
	s.notifier.Enqueue(s.receiver, notify.Event{Kind: marker})
	var out []string
	for timeout := time.After(10 * time.Second); ; {
		select {
		case e := <-s.got:
			if e.Kind == marker {
				return out
			}
			out = append(out, e.Kind+" "+e.Digest)
		case <-timeout:
			s.t.Fatalf("the notifications were not delivered; got %v so far", out)
		}
	}
}

// TestAHeldPromotionNotifiesOncePerRefusal: a follower held because its
// source is failing, or because its own policy refuses the promoted
// version, says so as a poll-found version held by the policy does: the
// ReleaseBlocked condition, one Event and one Blocked notification, not
// repeated by the next sync, at the source's next read. A soak is the
// expected wait before every promotion: it sets the condition and an
// Event, and notifies nobody; as the soak goes on, nothing more is written.
func TestAHeldPromotionNotifiesOncePerRefusal(t *testing.T) {
	failing := sourceSince(t0.Add(-2 * time.Hour))
	failing.CurrVersion, failing.CurrDigest, failing.CurrStatus = "v3", "sha256:3333333333333333333333333333333333333333333333333333333333333333", cvv1.StatusFailed
	onlyV1 := func(s *cvv1.ContainerVersionSpec) { s.Policy = &cvv1.PolicySpec{AllowedVersions: "v1"} }
	for _, tc := range []struct {
		name       string
		source     cvv1.ContainerVersionStatus
		edit       []func(*cvv1.ContainerVersionSpec)
		wantReason string
		want       []string // notifications
	}{
		{name: "the source is failing", source: failing, wantReason: cvv1.ReasonSourceFailing,
			want: []string{notify.Blocked + " " + digest2}},
		{name: "the target's policy refuses the version", source: sourceSince(t0.Add(-2 * time.Hour)),
			edit: []func(*cvv1.ContainerVersionSpec){onlyV1}, wantReason: "VersionNotAllowed",
			want: []string{notify.Blocked + " " + digest2}},
		{name: "the source soaks", source: sourceSince(t0.Add(-10 * time.Minute)), wantReason: cvv1.ReasonSoaking},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFollowerFixtureOf(t, tc.source, 3600, tc.edit...)
			sent := f.recordNotifications()
			f.sync("web")
			if cond := releaseBlocked(f.lastStatus()); cond == nil || cond.Reason != tc.wantReason {
				t.Fatalf("ReleaseBlocked %+v, want reason %s", cond, tc.wantReason)
			}
			f.awaitEcho("web")
			f.cvs.ClearActions()
			f.clock.Step(fleet.DefaultSourceInterval) // the source's next read
			f.sync("web")
			if got := actions(f.cvs); len(got) != 0 {
				t.Errorf("the second sync wrote %v; the hold was reported already", got)
			}
			if diff := cmp.Diff([]string{ReasonReleaseBlocked}, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, sent.kinds()); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
			if got := patches(f); len(got) != 0 {
				t.Errorf("a held promotion touched the workload: %v", got)
			}
		})
	}
}
