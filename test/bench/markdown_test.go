package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMarkdownRendersTheRecordedRuns renders the JSON of every run made
// with the current method (from 2026-11-29 11:13 on; the earlier files
// keep the tables of their own method) and compares it with the markdown
// beside it, so a change to the tables cannot silently change the figures,
// and a results file's .md always says what its .json holds.
func TestMarkdownRendersTheRecordedRuns(t *testing.T) {
	dir := filepath.Join("..", "..", "bench", "results")
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range paths {
		name := filepath.Base(path)
		if name < "2026-11-29T1113" || !isReport(path) {
			continue // an older method, or another figure's file (dashboard, push path, fleet, write-back, day-2)
		}
		checked++
		t.Run(name, func(t *testing.T) {
			var r report
			if err := readJSON(path, &r); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".md")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), r.markdown()); diff != "" {
				t.Errorf("markdown differs from the recorded run (-recorded +rendered; `go run ./test/bench -render %s` renders it again):\n%s", path, diff)
			}
		})
	}
	if checked == 0 {
		t.Fatalf("no results files of the current method in %s", dir)
	}
}

// TestPctSaysItsN: a p99 of fewer than 100 samples is labelled the max of
// n, missing samples are reported beside the figure, and a p99 whose rank
// falls on a missing sample is a miss, not the p99 of what arrived.
func TestPctSaysItsN(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    latencyResult
		want string
	}{
		{"200 of 200", latencyResult{Samples: 200, Expected: 200, P50Ms: 10, P99Ms: 20, MaxMs: 30}, "10 / 20 / 30"},
		{"50 of 50: the p99 is the max", latencyResult{Samples: 50, Expected: 50, P50Ms: 10, P99Ms: 30, MaxMs: 30}, "10 / max of 50 / 30"},
		{"492 of 500: the p99's rank (495) never arrived", latencyResult{Samples: 492, Expected: 500, P50Ms: 10, P99Ms: 20, MaxMs: 30},
			"10 / missed / 30 (8 of 500 missing)"},
		{"999 of 1000: the p99's rank (990) arrived", latencyResult{Samples: 999, Expected: 1000, P50Ms: 10, P99Ms: 20, MaxMs: 30},
			"10 / 20 / 30 (1 of 1000 missing)"},
		{"none arrived", latencyResult{Expected: 20}, "none (0 of 20 arrived)"},
		{"not run", latencyResult{}, "–"},
	} {
		if got := pct(tc.l); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := within(latencyResult{Samples: 998, Expected: 1000, MaxMs: 4000}); got != "not all: 998 of 1000" {
		t.Errorf("burst with 2 missing: %q", got)
	}
}

// TestTablePushFirst: figure 8 puts covered, poll-first and polled refs'
// requests per interval side by side, and the detection of announced
// pushes next to the trigger figure of the largest scale when it ran.
func TestTablePushFirst(t *testing.T) {
	pf := &pushFirstResult{IntervalSeconds: 5, SafetySeconds: 50, WindowSeconds: 100,
		Covered:   refTraffic{Refs: 98, Requests: 196, PerInterval: 9.8, PerRef: 0.1},
		PollFirst: refTraffic{Refs: 2, Requests: 40, PerInterval: 2, PerRef: 1},
		Polled:    refTraffic{Refs: 100, Requests: 2000, PerInterval: 100, PerRef: 1},
		FirstPush: webhookLatency{Rounds: 1, ByPoll: 2,
			Patched:  latencyResult{Samples: 100, Expected: 100, P50Ms: 40, P99Ms: 90, MaxMs: 95},
			Finished: latencyResult{Samples: 100, Expected: 100, P50Ms: 60, P99Ms: 120, MaxMs: 130}},
		PushFirst: webhookLatency{Rounds: 2,
			Patched:  latencyResult{Samples: 200, Expected: 200, P50Ms: 41, P99Ms: 88, MaxMs: 99},
			Finished: latencyResult{Samples: 199, Expected: 200, P50Ms: 61, P99Ms: 125, MaxMs: 140}},
	}
	head := "## 8. Push-first: refs announced by the registry's own push notifications\n\n" +
		"One CV per ref, poll interval 5 s, `--webhook-safety-interval` 50 s; the registry's notifications endpoint posts " +
		"to `/v1/webhooks/distribution`. Requests for each group's refs counted at the registry proxy over a 100 s window " +
		"(20.0 intervals) after one round of announced pushes. *Poll first*: pushed refs whose move a poll found before " +
		"the notification arrived; they are polled normally until their next push. Target: covered refs at most 0.1 " +
		"requests per interval per ref.\n\n" +
		"| refs | distinct refs | requests in window | requests per interval | per distinct ref |\n|---|---:|---:|---:|---:|\n" +
		"| covered by pushes | 98 | 196 | 9.8 | 0.100 |\n" +
		"| pushed, poll first | 2 | 40 | 2.0 | 1.000 |\n" +
		"| polled (never announced) | 100 | 2000 | 100.0 | 1.000 |\n\n" +
		"Detection of announced pushes, from the push's return (p50 / p99 / max in ms, nearest rank):\n\n" +
		"| pushes | → patched | → finished | n patched, finished / expected (rounds) | rollouts a poll started |\n|---|---:|---:|---:|---:|\n" +
		"| first push, refs still polled every interval | 40 / 90 / 95 | 60 / 120 / 130 | 100/100, 100/100 (1) | 2 |\n" +
		"| refs covered (push-first) | 41 / 88 / 99 | 61 / 125 / 140 (1 of 200 missing) | 200/200, 199/200 (2) | 0 |\n"
	withTrigger := scaleResult{CVs: 1000, TriggerLatency: pushLatency{Rounds: 10,
		Patched:  latencyResult{Samples: 200, Expected: 200, P50Ms: 35, P99Ms: 80, MaxMs: 90},
		Finished: latencyResult{Samples: 200, Expected: 200, P50Ms: 55, P99Ms: 110, MaxMs: 120}}}
	tests := []struct {
		name string
		r    report
		want string
	}{
		{"no push-first run", report{}, ""},
		{"trigger figure skipped", report{PushFirst: pf, Scales: []scaleResult{{CVs: 100}}}, head + "\n"},
		{"beside the trigger figure", report{PushFirst: pf, Scales: []scaleResult{{CVs: 100}, withTrigger}},
			head + "| figure 2b, POST /v1/trigger at 1000 CVs | 35 / 80 / 90 | 55 / 110 / 120 | 200/200, 200/200 (10) | – |\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tc.r.tablePushFirst(&b)
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("figure 8 (-want +got):\n%s", diff)
			}
		})
	}
}

// isReport reports whether path is a bench report (it has scales), not
// another figure's results file.
func isReport(path string) bool {
	var r struct {
		Scales []json.RawMessage `json:"scales"`
	}
	return readJSON(path, &r) == nil && len(r.Scales) > 0
}
