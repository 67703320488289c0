package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/test/benchresults"
)

// TestPerformanceDocMatchesNewestResults: docs/performance.md's targets
// table and summary are what the newest results files say, so the doc
// cannot drift from the measurements (`go run ./test/bench -docs`
// regenerates it after a run).
func TestPerformanceDocMatchesNewestResults(t *testing.T) {
	root := filepath.Join("..", "..")
	res, err := newestResults(root)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := replaceGenerated(string(doc), res.targetsSection())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(doc)); diff != "" {
		t.Errorf("docs/performance.md disagrees with %s (run `go run ./test/bench -docs`) (-generated +doc):\n%s", res.benchPath, diff)
	}
}

// TestTargetsJudgeMissesAsMisses: a target is met only by a figure that
// meets it; a missing sample, a slow burst or a p99 of a partial round is
// a miss, and a figure the run did not measure is said to be so.
func TestTargetsJudgeMissesAsMisses(t *testing.T) {
	lat := func(samples, expected int, p99 float64) latencyResult {
		return latencyResult{Samples: samples, Expected: expected, P50Ms: p99 / 2, P99Ms: p99, MaxMs: p99 + 1}
	}
	quick := func(sc *scaleResult) {
		sc.TriggerLatency.Patched = lat(200, 200, 400)
		sc.Burst = burstResult{CVs: 1000, Patched: 1000, AllPatched: true, Patch: lat(1000, 1000, 20000)}
		sc.Burst.Patch.MaxMs = 25000
		sc.Footprint = footprintResult{RSSMiB: 200, CPUPercentIdle: 4, Goroutines: 100}
		fp := lat(50, 50, 900)
		sc.PollLatency.FromPoll = &fp
		sc.Economy = economyResult{DistinctRefs: 1000, Heads: 1000}
		sc.Restart = restartResult{PeakRequestsPerSecond: 40, BudgetQPS: 50}
	}
	good := scaleResult{CVs: 10000}
	quick(&good)
	verdicts := func(r *report, d *benchresults.Dashboard) map[string]string {
		out := map[string]string{}
		for _, tg := range targets {
			_, met, measured := tg.eval(r, d)
			out[tg.name] = map[bool]string{true: "met", false: "missed"}[met]
			if !measured {
				out[tg.name] = "not measured"
			}
		}
		return out
	}
	small := scaleResult{CVs: 100}
	quick(&small)
	got := verdicts(&report{Scales: []scaleResult{small, good}}, &benchresults.Dashboard{RenderMs: 700, BudgetMs: 1000})
	for _, name := range []string{targets[0].name, targets[2].name, targets[3].name, targets[4].name, targets[5].name, targets[6].name, targets[7].name, targets[8].name, targets[12].name} {
		if got[name] != "met" {
			t.Errorf("good run: %q %s, want met", name, got[name])
		}
	}
	if got[targets[1].name] != "not measured" || got[targets[9].name] != "not measured" || got[targets[11].name] != "not measured" {
		t.Errorf("figures the run did not measure: %v", got)
	}

	bad := good
	bad.TriggerLatency.Patched = lat(195, 200, 400) // the p99's rank (198) never arrived
	bad.Burst.Patch.MaxMs = 43900
	bad.Footprint.CPUPercentIdle = 5.4
	fp := lat(50, 50, 1000)
	bad.PollLatency.FromPoll = &fp
	got = verdicts(&report{Scales: []scaleResult{small, bad}}, &benchresults.Dashboard{RenderMs: 1200, BudgetMs: 1000})
	for _, i := range []int{2, 3, 4, 6, 12} {
		if got[targets[i].name] != "missed" {
			t.Errorf("bad run: %q %s, want missed", targets[i].name, got[targets[i].name])
		}
	}
}
