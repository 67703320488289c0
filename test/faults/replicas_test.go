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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// roundRobin is the Service in front of the replicas: each request goes
// to the next replica in turn.
func roundRobin(t *testing.T, replicas ...*proc) *httptest.Server {
	t.Helper()
	var next atomic.Uint64
	targets := make([]*url.URL, len(replicas))
	for i, p := range replicas {
		u, err := url.Parse(p.url())
		e2eenv.Must(t, err)
		targets[i] = u
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(targets[next.Add(1)%uint64(len(targets))])
	}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv
}

// TestEveryReplicaAnswers runs two real replicas sharing a Lease behind one
// round-robin address, as the chart's Service does: every dashboard load
// and history read is right whichever replica answers, every trigger is
// accepted and leads to exactly one rollout by the leader, also when the
// leader is killed with a trigger in flight.
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

	loads := time.Now()
	for i := 0; i < 200; i++ {
		if err := f.dashboardShows(svc.URL, "v0"); err != nil {
			t.Fatalf("dashboard load %d: %v", i+1, err)
		}
	}
	t.Logf("MEASURE 200 dashboard + history loads through the round-robin address: all correct in %s",
		time.Since(loads).Round(time.Millisecond))

	triggers := time.Now()
	for i := 1; i <= 50; i++ {
		digest := f.push(fmt.Sprintf("v%d", i))
		if status, body := send(t, svc.URL+"/v1/trigger", "Bearer "+apiKey,
			jsonBody(fmt.Sprintf(`{"namespace":%q,"name":%q}`, f.NS, f.app))()); status != http.StatusAccepted {
			t.Fatalf("trigger %d: %d %s", i, status, body)
		}
		f.WaitStatus(f.app, cvv1.StatusSuccess, digest, 30*time.Second)
	}
	t.Logf("MEASURE 50 triggers through the round-robin address: all accepted and rolled out in %s",
		time.Since(triggers).Round(time.Millisecond))

	// A trigger in flight when the leader dies: recorded on the CV by
	// whichever replica took it, acted on by the successor.
	last := f.push("v51")
	if status, body := send(t, svc.URL+"/v1/trigger", "Bearer "+apiKey,
		jsonBody(fmt.Sprintf(`{"namespace":%q,"name":%q}`, f.NS, f.app))()); status != http.StatusAccepted {
		t.Fatalf("trigger in flight: %d %s", status, body)
	}
	leader.kill9()
	f.WaitStatus(f.app, cvv1.StatusSuccess, last, 60*time.Second)

	time.Sleep(2 * time.Second) // a duplicate rollout would show by now
	perDigest := map[string]int{}
	triggered := 0
	for _, r := range f.History(f.app) {
		if r.Trigger == history.TriggerAPI {
			triggered++
			perDigest[r.ToDigest]++
		}
	}
	if triggered != 51 || len(perDigest) != 51 {
		t.Errorf("51 triggers led to %d rollouts of %d digests, want 51 of 51", triggered, len(perDigest))
	}
	t.Logf("MEASURE multi-replica test: %s in all", time.Since(started).Round(time.Millisecond))
}

// dashboardShows checks one dashboard load and one history read through
// base: the app's row runs version, and its history is there.
func (f *fixture) dashboardShows(base, version string) error {
	resp, err := http.Get(base + "/v1/cv/workloads?format=json&namespace=" + f.NS)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rows []dashboard.Row
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if len(rows) != 1 || rows[0].Version != version || !strings.Contains(rows[0].Image, ":"+version+"@") {
		return fmt.Errorf("rows %+v, want one running %s", rows, version)
	}
	hist, err := http.Get(base + "/v1/cv/workloads/" + f.app + "?format=json&namespace=" + f.NS)
	if err != nil {
		return err
	}
	hist.Body.Close()
	if hist.StatusCode != http.StatusOK {
		return fmt.Errorf("history: status %d", hist.StatusCode)
	}
	return nil
}
