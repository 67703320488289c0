package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// TestProxyCountsRequestsPerRef: the push-first figure counts every
// registry request for a ref at the proxy (HEADs, GETs, tag lists), per
// repository, within a window; the bench's own pushes are not counted.
func TestProxyCountsRequestsPerRef(t *testing.T) {
	p := &countingProxy{counts: map[string]int64{}, perSecond: map[int64]int64{}, heads: map[string][]time.Time{},
		requests: map[string][]time.Time{}}
	h := p.count(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	send := func(method, path, agent string) {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("User-Agent", agent)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	before := time.Now()
	send(http.MethodHead, "/v2/pf/app-1/manifests/env-prod", "cvmanager")
	send(http.MethodGet, "/v2/pf/app-1/tags/list", "cvmanager")
	send(http.MethodHead, "/v2/pf/app-2/manifests/env-prod", "cvmanager")
	send(http.MethodPut, "/v2/pf/app-1/manifests/env-prod", benchPushAgent+" go-containerregistry")
	send(http.MethodPost, "/v2/pf/app-1/blobs/uploads/", benchPushAgent)
	send(http.MethodGet, "/v2/", "cvmanager")
	after := time.Now().Add(time.Millisecond)
	tests := []struct {
		name     string
		repos    []string
		from, to time.Time
		want     int64
	}{
		{"one ref, HEAD and tag list, pushes left out", []string{"pf/app-1"}, before, after, 2},
		{"two refs", []string{"pf/app-1", "pf/app-2"}, before, after, 3},
		{"window before the requests", []string{"pf/app-1", "pf/app-2"}, before.Add(-time.Hour), before, 0},
		{"unknown ref", []string{"pf/app-3"}, before, after, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.requestsBetween(tc.repos, tc.from, tc.to); got != tc.want {
				t.Errorf("requestsBetween = %d, want %d", got, tc.want)
			}
		})
	}
	if diff := cmp.Diff(map[string]int64{"HEAD manifests": 2, "GET tags": 1}, p.snapshot()); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if got := p.countFor(http.MethodHead, "manifests", "pf/app-1"); got != 1 {
		t.Errorf("HEADs of pf/app-1's manifests: %d, want 1 (the push left out)", got)
	}
}

// TestTraffic: requests per interval per distinct ref is 1 for refs polled
// every interval and 0.1 for refs polled at a 10x safety interval.
func TestTraffic(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &countingProxy{requests: map[string][]time.Time{}}
	for i := range 20 { // one poll every 5 s over 100 s
		p.requests["polled"] = append(p.requests["polled"], t0.Add(time.Duration(i)*5*time.Second))
	}
	p.requests["covered-a"] = []time.Time{t0.Add(10 * time.Second), t0.Add(60 * time.Second)}
	p.requests["covered-b"] = []time.Time{t0.Add(30 * time.Second), t0.Add(80 * time.Second)}
	tests := []struct {
		name  string
		repos []string
		want  refTraffic
	}{
		{"polled every interval", []string{"polled"}, refTraffic{Refs: 1, Requests: 20, PerInterval: 1, PerRef: 1}},
		{"covered, safety 10x", []string{"covered-a", "covered-b"}, refTraffic{Refs: 2, Requests: 4, PerInterval: 0.2, PerRef: 0.1}},
		{"no refs", nil, refTraffic{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := traffic(p, tc.repos, t0, t0.Add(100*time.Second), 20)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("traffic (-want +got):\n%s", diff)
			}
		})
	}
}

// TestByTrigger: the tracker keeps what the controller said started each
// rollout (status.rollout.trigger of the expected digest), and a pushed ref
// whose move a poll found first is not counted as covered.
func TestByTrigger(t *testing.T) {
	tr := &tracker{byDeploy: map[string]*expectation{}, byCV: map[string]*expectation{}}
	rolling := func(name, digest, trigger string) *cvv1.ContainerVersion {
		return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "pf", Name: name},
			Status: cvv1.ContainerVersionStatus{Rollout: &cvv1.RolloutStatus{Digest: digest, Trigger: trigger}}}
	}
	// write delivers cv as the watch would: the previous version of the
	// object, then the new one with the next resourceVersion.
	last, rv := map[string]*cvv1.ContainerVersion{}, 0
	write := func(cv *cvv1.ContainerVersion) {
		rv++
		cv.ResourceVersion = fmt.Sprint(rv)
		old := last[cv.Name]
		if old == nil {
			old = &cvv1.ContainerVersion{}
		}
		tr.cvChanged(old, cv)
		last[cv.Name] = cv
	}
	var rounds pushedRounds
	writes := map[string]int{}
	for _, c := range []struct{ name, trigger string }{{"a", "webhook"}, {"b", "poll"}, {"c", ""}} {
		x := tr.expect("pf", "d-"+c.name, c.name, "sha256:new")
		write(rolling(c.name, "sha256:old", "poll")) // an earlier rollout: not this one
		if c.trigger != "" {
			write(rolling(c.name, "sha256:new", c.trigger))
		}
		write(rolling(c.name, "sha256:new", "release")) // the first seen wins
		tr.cvChanged(last[c.name], last[c.name])        // a resync: no write
		writes[c.name] = tr.writesOf(x)
		rounds.moved = append(rounds.moved, &moved{ref: &ref{path: "pf/" + c.name}, expects: []*expectation{x}})
	}
	if diff := cmp.Diff(map[string]int{"a": 3, "b": 3, "c": 2}, writes); diff != "" {
		t.Errorf("writes counted per CV (-want +got):\n%s", diff)
	}
	covered, pollFirst := rounds.byTrigger(tr)
	if diff := cmp.Diff([]string{"pf/a", "pf/c"}, covered); diff != "" {
		t.Errorf("covered (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pf/b"}, pollFirst); diff != "" {
		t.Errorf("poll first (-want +got):\n%s", diff)
	}
}
