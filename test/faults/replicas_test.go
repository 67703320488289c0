package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// service is the Service in front of the replicas: each request goes to
// the next replica in turn, and the replica that served each kind of
// request is counted, so a test can show every replica served every kind.
type service struct {
	*httptest.Server
	mu     sync.Mutex
	served map[string]map[int]int // kind ("rows", "history", …) → replica index → requests
}

// roundRobin starts the service over replicas.
func roundRobin(t *testing.T, replicas ...*proc) *service {
	t.Helper()
	var next atomic.Uint64
	targets := make([]*url.URL, len(replicas))
	for i, p := range replicas {
		u, err := url.Parse(p.url())
		e2eenv.Must(t, err)
		targets[i] = u
	}
	svc := &service{served: map[string]map[int]int{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		i := int(next.Add(1) % uint64(len(targets)))
		r.SetURL(targets[i])
		svc.mu.Lock()
		defer svc.mu.Unlock()
		kind := requestKind(r.In.URL.Path)
		if svc.served[kind] == nil {
			svc.served[kind] = map[int]int{}
		}
		svc.served[kind][i]++
	}}
	svc.Server = httptest.NewServer(proxy)
	t.Cleanup(svc.Close)
	return svc
}

// requestKind names a dashboard request by its path.
func requestKind(path string) string {
	switch {
	case path == "/v1/cv/workloads":
		return "rows"
	case strings.HasPrefix(path, "/v1/cv/workloads/"):
		return "history"
	}
	return path
}

// servedBy is how many requests of kind replica i served.
func (s *service) servedBy(kind string, i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[kind][i]
}

// TestEveryReplicaAnswers runs two real replicas sharing a Lease behind one
// round-robin address, as the chart's Service does: every replica serves
// dashboard rows and history, each answer right and both replicas' alike;
// every trigger is accepted and leads to exactly one rollout by the
// leader, also a trigger sent to the standby just before the leader is
// killed with kill -9. Black-box: HTTP and API objects only, so it holds
// whatever path a trigger takes to the leader.
func TestEveryReplicaAnswers(t *testing.T) {
	started := time.Now()
	f := newFixture(t, "replicas")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	f.Ctx = ctx        // 50 rollouts take longer than a fixture's default 3 minutes
	d0 := f.push("v0") // before the first poll: the next one is an hour away
	f.createCV(func(s *cvv1.ContainerVersionSpec) {
		s.PollIntervalSeconds = 3600 // only the triggers move it
		s.History.Limit = 100
	})
	keys := filepath.Join(t.TempDir(), "keys")
	e2eenv.Must(t, os.MkdirAll(keys, 0o700))
	e2eenv.Must(t, os.WriteFile(filepath.Join(keys, "ci"), []byte(apiKey+"\n"), 0o600))
	lease := "lease-" + f.NS
	args := []string{"--namespace", f.NS, "--insecure-registry", f.reg.Host, "--leader-elect=true",
		"--leader-elect-namespace", "cvmanager-system", "--leader-elect-name", lease,
		"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(), "--trigger-keys-dir", keys,
		// Each new version is found among all the versions pushed so far
		// (one HEAD per candidate tag): the default 5/s budget per host
		// would make the test about the registry budget, not the replicas.
		"--registry-qps", "200", "--registry-burst", "400"}
	a := startProc(t, "replica-a", e2eenv.ControllerConfig(t), args...)
	b := startProc(t, "replica-b", e2eenv.ControllerConfig(t), args...)
	a.waitReady(f)
	b.waitReady(f)
	leader := f.waitLeader(lease, map[int]*proc{a.pid: a, b.pid: b}, nil)
	svc := roundRobin(t, a, b)
	f.WaitStatus(f.app, cvv1.StatusSuccess, d0, 60*time.Second)

	// Reads: rows and history alternate which goes first, so with two
	// replicas taking turns each replica serves both kinds; each answer
	// is checked against the history in the API and the replicas'
	// bodies against each other.
	want := f.WorkloadHistory(f.app)
	if len(want) == 0 {
		t.Fatal("no history record of v0 in the API")
	}
	loads := time.Now()
	for i := 0; i < 200; i++ {
		if err := f.dashboardShows(svc.URL, "v0", want, i%2 == 1); err != nil {
			t.Fatalf("dashboard load %d: %v", i+1, err)
		}
	}
	t.Logf("MEASURE 200 dashboard + history loads through the round-robin address: all correct in %s",
		time.Since(loads).Round(time.Millisecond))
	for i, p := range []*proc{a, b} {
		for _, kind := range []string{"rows", "history"} {
			if n := svc.servedBy(kind, i); n < 50 {
				t.Errorf("%s served %d of 200 %s loads, want about half", p.name, n, kind)
			}
		}
	}
	for _, path := range []string{"/v1/cv/workloads?format=json&namespace=" + f.NS, "/v1/cv/workloads/" + f.app + "?format=json&namespace=" + f.NS} {
		bodyA, bodyB := getJSON(t, a.url()+path), getJSON(t, b.url()+path)
		if diff := cmp.Diff(bodyA, bodyB); diff != "" {
			t.Errorf("%s: the replicas answer differently (-%s +%s):\n%s", path, a.name, b.name, diff)
		}
	}

	triggers := time.Now()
	var genBefore50 int64
	for i := 1; i <= 50; i++ {
		if i == 50 {
			genBefore50 = f.DeploymentGeneration(f.app)
		}
		digest := f.push(fmt.Sprintf("v%d", i))
		f.trigger(t, svc.URL, fmt.Sprintf("trigger %d", i))
		f.WaitStatus(f.app, cvv1.StatusSuccess, digest, 30*time.Second)
	}
	t.Logf("MEASURE 50 triggers through the round-robin address: all accepted and rolled out in %s",
		time.Since(triggers).Round(time.Millisecond))

	// A trigger sent to the standby just before the leader is killed with
	// kill -9: the standby records it durably, its successor (the standby
	// itself) acts on it, exactly once. v52, triggered after it, is the
	// barrier: requests of one CV are served in order, so once v52 runs,
	// a duplicate of v51 could only come back as a change of the
	// workload's image, which the generation count shows.
	standby := b
	if leader == b {
		standby = a
	}
	perRollout := f.DeploymentGeneration(f.app) - genBefore50 // template changes one rollout makes
	if perRollout < 1 {
		t.Fatalf("v50's rollout changed the Deployment's generation by %d: the count below would prove nothing", perRollout)
	}
	gen51 := f.DeploymentGeneration(f.app)
	last := f.push("v51")
	f.trigger(t, standby.url(), "trigger to the standby")
	leader.kill9()
	f.WaitStatus(f.app, cvv1.StatusSuccess, last, 60*time.Second)
	barrier := f.push("v52")
	f.trigger(t, standby.url(), "trigger after the takeover")
	f.WaitStatus(f.app, cvv1.StatusSuccess, barrier, 60*time.Second)
	if got, want := f.DeploymentGeneration(f.app)-gen51, 2*perRollout; got != want {
		t.Errorf("v51 and v52 changed the Deployment's template %d times, want %d (%d per rollout)", got, want, perRollout)
	}
	perDigest := map[string]int{}
	triggered := 0
	for _, r := range f.History(f.app) {
		if r.Trigger == history.TriggerAPI {
			triggered++
			perDigest[r.ToDigest]++
		}
	}
	if triggered != 52 || len(perDigest) != 52 || perDigest[last] != 1 || perDigest[barrier] != 1 {
		t.Errorf("52 triggers led to %d rollouts of %d digests (v51 %d times, v52 %d), want each once", triggered, len(perDigest), perDigest[last], perDigest[barrier])
	}
	inMemoryTriggerSurvivesTheLeader(t, f, standby, perRollout, args)
	t.Logf("MEASURE multi-replica test: %s in all", time.Since(started).Round(time.Millisecond))
}

// inMemoryTriggerSurvivesTheLeader is the other gap of docs/architecture.md:
// the leader takes a trigger in memory, answers 202 and is killed with
// kill -9 at once, maybe before it wrote the intent. Its successor does not
// know of the request; its next poll of the CV finds the moved tag, so the
// version rolls out exactly once either way (the leader's intent finished
// by the successor, or the successor's poll). The CV polls every 5 s here,
// so "the next poll" is within the test's patience.
func inMemoryTriggerSurvivesTheLeader(t *testing.T, f *fixture, leader *proc, perRollout int64, args []string) {
	successor := startProc(t, "replica-c", e2eenv.ControllerConfig(t), args...)
	successor.waitReady(f)
	cv := f.cv()
	cv.Spec.PollIntervalSeconds = 5
	_, err := f.CVClient.CvmanagerV1alpha1().ContainerVersions(f.NS).Update(f.Ctx, cv, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	gen := f.DeploymentGeneration(f.app)
	moved := f.push("v53")
	f.trigger(t, leader.url(), "trigger to the leader")
	leader.kill9()
	f.WaitStatus(f.app, cvv1.StatusSuccess, moved, 60*time.Second)
	// The successor's own polls go on every 5 s: two more that found
	// nothing new (its polls_total) would have shown a second rollout of
	// v53 as a generation change.
	unchanged := func() int {
		m := regexp.MustCompile(`cvmanager_polls_total\{[^}]*result="unchanged"[^}]*\} ([0-9]+)`).FindStringSubmatch(get(t, successor.url()+"/metrics"))
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	polls := unchanged()
	f.Eventually(30*time.Second, "two more polls by the successor", func() (bool, error) { return unchanged() >= polls+2, nil })
	if got := f.DeploymentGeneration(f.app) - gen; got != perRollout {
		t.Errorf("v53 changed the Deployment's template %d times, want %d (one rollout)", got, perRollout)
	}
	rollouts := 0
	for _, r := range f.History(f.app) {
		if r.ToDigest == moved {
			rollouts++
			// "api": the leader wrote the intent before it died; "poll":
			// it did not, and the successor's poll found the tag.
			t.Logf("v53 rolled out, started by %q", r.Trigger)
		}
	}
	if rollouts != 1 {
		t.Errorf("v53, triggered on the leader just before its kill -9, rolled out %d times, want once", rollouts)
	}
}

// trigger POSTs a trigger of the app's CV to base and fails the test
// unless it is accepted; what names the call in the failure.
func (f *fixture) trigger(t *testing.T, base, what string) {
	t.Helper()
	if status, body := send(t, base+"/v1/trigger", "Bearer "+apiKey,
		jsonBody(fmt.Sprintf(`{"namespace":%q,"name":%q}`, f.NS, f.app))()); status != http.StatusAccepted {
		t.Fatalf("%s: %d %s", what, status, body)
	}
}

// dashboardShows checks one dashboard load and one history read through
// base (history first when historyFirst): the app's row runs version, and
// its history is the one the API holds (want).
func (f *fixture) dashboardShows(base, version string, want []history.Record, historyFirst bool) error {
	checks := []func() error{
		func() error {
			var rows []dashboard.Row
			if err := getInto(base+"/v1/cv/workloads?format=json&namespace="+f.NS, &rows); err != nil {
				return err
			}
			if len(rows) != 1 || rows[0].Version != version || !strings.Contains(rows[0].Image, ":"+version+"@") {
				return fmt.Errorf("rows %+v, want one running %s", rows, version)
			}
			return nil
		},
		func() error {
			var records []history.Record
			if err := getInto(base+"/v1/cv/workloads/"+f.app+"?format=json&namespace="+f.NS, &records); err != nil {
				return fmt.Errorf("history: %w", err)
			}
			if diff := cmp.Diff(want, records); diff != "" {
				return fmt.Errorf("history differs from the API's (-api +served):\n%s", diff)
			}
			return nil
		},
	}
	if historyFirst {
		checks[0], checks[1] = checks[1], checks[0]
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// getInto GETs url and decodes its JSON answer into v.
func getInto(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// getJSON is url's JSON answer, decoded generically for comparison.
func getJSON(t *testing.T, url string) any {
	t.Helper()
	var v any
	e2eenv.Must(t, getInto(url, &v))
	return v
}
