package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// hostile is what a compromised peer might send as names and versions.
const hostile = `<img src=x onerror=window.__xss=1>`

// cvAt is a Success CV "shop/<name>" at version.
func cvAt(name, version string, since time.Time) *cvv1.ContainerVersion {
	t := metav1.NewTime(since)
	return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: cvv1.ContainerVersionSpec{Tag: "env", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Container: cvv1.ContainerSpec{Name: "app"}},
		Status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, CurrVersion: version, CurrStatusTime: &t}}
}

// dashboardServer serves a real dashboard handler over src.
func dashboardServer(t *testing.T, src fakeSource) *httptest.Server {
	mux := http.NewServeMux()
	NewHandler(src, history.NewStore(fake.NewClientset()), src).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestFleetPage: this cluster and three peers (one fresh, one that answered
// once then fails: stale, one never reachable), server-rendered, hostile
// peer data shown as text, JSON alike.
func TestFleetPage(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := clocktesting.NewFakeClock(now)
	local := fakeSource{cvs: []*cvv1.ContainerVersion{cvAt("web", "v2", now.Add(-time.Hour)), cvAt("api", "v7", now.Add(-time.Hour))},
		workloads: []workload.Workload{deployment("shop", "web", "r/w:v2"), deployment("shop", "api", "r/a:v7")}}
	prod := dashboardServer(t, fakeSource{cvs: []*cvv1.ContainerVersion{cvAt("web", "v1", now.Add(-48*time.Hour))},
		workloads: []workload.Workload{deployment("shop", "web", "r/w:v1")}})
	var failing atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer peer-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode([]Row{{Namespace: "shop", Name: "web", CV: "web", Version: "v2", Status: "Success"},
			{Namespace: hostile, Name: hostile, CV: hostile, Version: hostile, Status: "Success", State: hostile}})
	}))
	t.Cleanup(flaky.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tokenFile := t.TempDir() + "/token"
	if err := writeFile(tokenFile, "peer-token\n"); err != nil {
		t.Fatal(err)
	}
	peers, err := NewPeers([]Peer{{Name: "prod", URL: prod.URL}, {Name: "flaky", URL: flaky.URL, TokenFile: tokenFile}, {Name: "gone", URL: gone.URL}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	peers.Clock, peers.Interval = clock, 30*time.Second
	peers.Refresh(context.Background())
	failing.Store(true)
	peers.Refresh(context.Background())

	h := NewHandler(local, history.NewStore(fake.NewClientset()), local)
	h.Clock, h.Fleet, h.FleetName = clock, peers, "staging"
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, body := get(t, srv.URL+FleetPath+"?format=html")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{
		`<li data-cluster="flaky" class="cluster-stale"><b>flaky</b> <span class="status status-drifted">stale</span>`,
		`answered 503 Service Unavailable`,
		`<li data-cluster="gone" class="cluster-unreachable">`,
		`<li data-cluster="prod" class="cluster-fresh">`,
		`&lt;img src=x onerror=window.__xss=1&gt;`,
		`<code>v1</code> <span class="status status-success">Success</span>`,
		`href="` + prod.URL + `/v1/cv/containerversions/web/history?namespace=shop&amp;format=html"`,
		`<span class="differs-mark" title="clusters differ">≠</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "<script") {
		t.Error("hostile markup reached the page")
	}

	_, body = get(t, srv.URL+FleetPath+"?format=json")
	var m fleet.Matrix
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, c := range m.Clusters {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "staging,prod,flaky,gone" || !m.Clusters[2].Stale || m.Clusters[3].Error == "" || len(m.Rows) != 3 {
		t.Errorf("JSON matrix: %+v", m)
	}

	// Without a refresh for more than three intervals, even a peer whose
	// last read succeeded is stale.
	clock.Step(2 * time.Minute)
	if c := peers.Clusters(); !c[0].Stale {
		t.Errorf("prod not stale after 2 min without a refresh: %+v", c[0])
	}
}

func TestNewPeersRefusesBadURLs(t *testing.T) {
	for _, p := range [][]Peer{{{Name: "a", URL: "javascript:alert(1)"}}, {{Name: "", URL: "http://127.0.0.1:1"}},
		{{Name: "a", URL: "http://127.0.0.1:1"}, {Name: "a", URL: "http://127.0.0.1:2"}}} {
		if _, err := NewPeers(p, nil); err == nil {
			t.Errorf("NewPeers(%v) accepted", p)
		}
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s\n%s", url, resp.Status, b)
	}
	return resp, string(b)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// TestHeldUntilIsShown: a version held by minAge shows when it becomes
// eligible, on the workloads page and in its JSON.
func TestHeldUntilIsShown(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cv := cvAt("web", "v2", now.Add(-time.Hour))
	until := metav1.NewTime(now.Add(90 * time.Minute))
	cv.Status.AvailableVersion, cv.Status.AvailableDigest, cv.Status.HeldUntil = "v3", "sha256:c", &until
	cv.Status.Conditions = []metav1.Condition{{Type: cvv1.ConditionReleaseBlocked, Status: metav1.ConditionTrue, Reason: cvv1.ReasonMinAge}}
	src := fakeSource{cvs: []*cvv1.ContainerVersion{cv}, workloads: []workload.Workload{deployment("shop", "web", "r/w:v2")}}
	srv := dashboardServer(t, src)
	_, body := get(t, srv.URL+"/v1/cv/workloads?format=html")
	if want := `holds <code>v3</code> until <time datetime="2026-12-07T13:30:00Z">2026-12-07T13:30:00Z</time>`; !strings.Contains(body, want) {
		t.Errorf("page lacks %q", want)
	}
	_, body = get(t, srv.URL+"/v1/cv/workloads?format=json")
	if !strings.Contains(body, `"HeldUntil": "2026-12-07T13:30:00Z"`) {
		t.Errorf("JSON lacks HeldUntil:\n%s", body)
	}
}
