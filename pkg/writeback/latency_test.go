package writeback

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// benchEnv turns the latency test into the measurement that writes
// bench/results/<date>-writeback.{json,md}; without it the test takes a
// few samples as a smoke test.
const benchEnv = "CVMANAGER_WRITEBACK_BENCH"

type latencySeries struct {
	Name        string    `json:"name"`
	BatchWindow string    `json:"batchWindow"`
	Samples     int       `json:"samples"`
	P50Ms       float64   `json:"p50Ms"`
	P90Ms       float64   `json:"p90Ms"`
	P99Ms       float64   `json:"p99Ms"`
	MaxMs       float64   `json:"maxMs"`
	AllMs       []float64 `json:"allMs"`
	Commits     int       `json:"commits,omitempty"`
}

// TestWriteBackLatency measures "submit → commit visible in the remote":
// from Submit until an ls-remote of the branch (a separate go-git client)
// shows the reported commit, against git-http-backend on 127.0.0.1.
// Samples run one after another, each a new rollout of one CV.
func TestWriteBackLatency(t *testing.T) {
	samples, bursts := 5, 1
	if os.Getenv(benchEnv) != "" {
		samples, bursts = 100, 10
	}
	s := newGitServer(t)
	files := map[string]string{"charts/web/values.yaml": helmValues}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("apps/cv%02d/values.yaml", i)] = helmValues
	}
	url := s.newRepo("bench", files)
	var series []latencySeries
	for _, window := range []time.Duration{200 * time.Millisecond, 10 * time.Millisecond} {
		series = append(series, sequential(t, s, url, window, samples))
	}
	series = append(series, burst(t, s, url, 200*time.Millisecond, bursts))
	for _, r := range series {
		t.Logf("%-40s window %-6s n=%-4d p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms", r.Name, r.BatchWindow, r.Samples, r.P50Ms, r.P99Ms, r.MaxMs)
	}
	if os.Getenv(benchEnv) != "" {
		writeLatencyResults(t, series)
	}
}

func sequential(t *testing.T, s *gitServer, url string, window time.Duration, n int) latencySeries {
	c := newCollector()
	w := New(Config{BatchWindow: window}, c.report)
	defer w.Close()
	base := int(window / time.Millisecond * 1000)
	var ms []float64
	for i := 1; i <= n; i++ {
		req := request(s, url, "prod/web", fmt.Sprintf("seq-%d-%d", base, i), base+i, helmTarget)
		start := time.Now()
		w.Submit(req)
		st := c.wait(t, "prod/web", i)
		if st.State != cvv1.WriteBackWritten {
			t.Fatalf("sample %d: %+v", i, st)
		}
		waitVisible(t, s, url, st.Commit)
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	return summarize("one CV, submit → visible (ls-remote)", window, ms, 0)
}

// burst: 50 CVs of one repository submit at once; the sample is the time
// until the last one's commit is visible.
func burst(t *testing.T, s *gitServer, url string, window time.Duration, n int) latencySeries {
	var ms []float64
	before := s.commits("bench", "main")
	for b := 0; b < n; b++ {
		c := newCollector()
		w := New(Config{BatchWindow: window}, c.report)
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				tg := helmTarget
				tg.Path = fmt.Sprintf("apps/cv%02d/values.yaml", i)
				w.Submit(request(s, url, fmt.Sprintf("prod/cv%02d", i), fmt.Sprintf("burst-%d-%d", b, i), 1000*(b+1)+i, tg))
			}(i)
		}
		wg.Wait()
		var last string
		for i := 0; i < 50; i++ {
			st := c.wait(t, fmt.Sprintf("prod/cv%02d", i), 1)
			if st.State != cvv1.WriteBackWritten {
				t.Fatalf("burst %d cv%02d: %+v", b, i, st)
			}
			last = st.Commit
		}
		waitVisible(t, s, url, last)
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		w.Close()
	}
	return summarize("50 CVs at once, submit → last visible", window, ms, s.commits("bench", "main")-before)
}

// waitVisible polls ls-remote until main is at commit (or has moved past
// it: the commit is then an ancestor, checked by the git server).
func waitVisible(t *testing.T, s *gitServer, url, commit string) {
	t.Helper()
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		refs, err := rem.List(&git.ListOptions{Auth: &githttp.BasicAuth{Username: s.user, Password: s.pass}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			if r.Name() == plumbing.NewBranchReferenceName("main") && r.Hash().String() == commit {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("commit %s not visible in %s within 30s", commit, url)
}

func summarize(name string, window time.Duration, ms []float64, commits int) latencySeries {
	sorted := append([]float64(nil), ms...)
	sort.Float64s(sorted)
	q := func(p float64) float64 {
		i := int(p*float64(len(sorted))+0.999999) - 1
		return sorted[max(0, min(i, len(sorted)-1))]
	}
	return latencySeries{Name: name, BatchWindow: window.String(), Samples: len(ms), P50Ms: q(0.50), P90Ms: q(0.90),
		P99Ms: q(0.99), MaxMs: sorted[len(sorted)-1], AllMs: ms, Commits: commits}
}

func writeLatencyResults(t *testing.T, series []latencySeries) {
	dir := filepath.Join("..", "..", "bench", "results")
	stamp := time.Now().UTC().Format("2006-01-02T1504")
	out := map[string]any{
		"what":    "git write-back latency: Submit → commit visible in the remote (ls-remote), pkg/writeback against git-http-backend (Debian git) behind net/http/cgi with basic auth on 127.0.0.1",
		"date":    time.Now().UTC().Format(time.RFC3339),
		"go":      runtime.Version(),
		"cpus":    runtime.NumCPU(),
		"series":  series,
		"command": benchEnv + "=1 go test ./pkg/writeback/ -run TestWriteBackLatency -v",
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, stamp+"-writeback.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Git write-back latency, %s\n\n", out["date"])
	fmt.Fprintf(&md, "Submit → commit visible in the remote (a separate ls-remote sees the reported commit on the branch).\n")
	fmt.Fprintf(&md, "pkg/writeback (go-git, in-memory clone kept between writes) against git-http-backend from Debian's git behind\n")
	fmt.Fprintf(&md, "Go's net/http/cgi with basic auth on 127.0.0.1; %d CPUs shared with other work; %s.\n", runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&md, "Command: `%s`.\n\n", out["command"])
	md.WriteString("| series | batch window | samples | p50 ms | p90 ms | p99 ms | max ms | commits |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range series {
		commits := ""
		if r.Commits > 0 {
			commits = fmt.Sprint(r.Commits)
		}
		fmt.Fprintf(&md, "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %s |\n", r.Name, r.BatchWindow, r.Samples, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, commits)
	}
	md.WriteString("\nThe batch window (default 200 ms) is the wait for other CVs of the same repository to share the commit;\n" +
		"it is most of the single-CV latency. The burst rows count the commits the 50 CVs of all bursts made.\n" +
		"This measures the writer alone; the controller's \"rollout finished → Submit\" step is not included.\n")
	if err := os.WriteFile(filepath.Join(dir, stamp+"-writeback.md"), []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s-writeback.{json,md} in %s", stamp, dir)
}
