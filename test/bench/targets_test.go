package main

import (
	"os"
	"path/filepath"
	"strings"
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
	// Every make test writes a newer day-2 file: the doc's day-2 rows are
	// judged against the file it links.
	if err := res.loadDay2(root, linkedDay2(root, string(doc))); err != nil {
		t.Fatalf("the day-2 results file docs/performance.md links: %v", err)
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
	scale := func(cvs int, rss float64) scaleResult {
		sc := scaleResult{CVs: cvs}
		sc.TriggerLatency.Patched = lat(200, 200, 400)
		burst := min(cvs, 1000)
		sc.Burst = burstResult{CVs: burst, Patched: burst, Finished: burst, AllPatched: true, AllFinished: true,
			Patch: lat(burst, burst, 1000), Finish: lat(burst, burst, 2000)}
		sc.Burst.WritesPerRollout = map[string]float64{"PATCH deployments": 1, "PUT containerversions/status": 2}
		sc.Footprint = footprintResult{RSSMiB: rss, CPUPercentIdle: 4, Goroutines: 100}
		fp := lat(50, 50, 900)
		sc.PollLatency.FromPoll = &fp
		sc.Economy = economyResult{DistinctRefs: 1000, Heads: 1000}
		sc.Restart = restartResult{PeakRequestsPerSecond: 40, BudgetQPS: 50}
		return sc
	}
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
	named := func(prefix string) string {
		for _, tg := range targets {
			if strings.HasPrefix(tg.name, prefix) {
				return tg.name
			}
		}
		t.Fatalf("no target starts with %q", prefix)
		return ""
	}
	small, mid, large := scale(100, 60), scale(1000, 70), scale(10000, 190)
	got := verdicts(&report{Scales: []scaleResult{small, mid, large}}, &benchresults.Dashboard{RenderMs: 700, BudgetMs: 1000})
	for _, prefix := range []string{"10,000 CVs over", "detection by poll", "detection by trigger", "burst (issue 29)", "writes per rollout",
		"steady RSS ≤ 75", "steady RSS ≤ 200", "idle CPU", "goroutines", "restart", "dashboard"} {
		if name := named(prefix); got[name] != "met" {
			t.Errorf("good run: %q %s, want met", name, got[name])
		}
	}
	for _, prefix := range []string{"50% of CVs", "RSS with 20,000", "the same, controller restarted", "push-first"} {
		if name := named(prefix); got[name] != "not measured" {
			t.Errorf("good run: %q %s, want not measured", name, got[name])
		}
	}

	badMid, badLarge := mid, large
	badLarge.TriggerLatency.Patched = lat(195, 200, 400) // the p99's rank (198) never arrived
	badMid.Burst.Finish.MaxMs = 12100                    // finished after 12 s
	badMid.Burst.WritesPerRollout = map[string]float64{"PATCH deployments": 1.06, "PUT containerversions/status": 2}
	badMid.Footprint.RSSMiB = 83
	badLarge.Footprint.RSSMiB = 237
	badLarge.Footprint.CPUPercentIdle = 5.4
	fp := lat(50, 50, 1000)
	badLarge.PollLatency.FromPoll = &fp
	got = verdicts(&report{Scales: []scaleResult{small, badMid, badLarge}}, &benchresults.Dashboard{RenderMs: 1200, BudgetMs: 1000})
	for _, prefix := range []string{"detection by poll", "detection by trigger", "burst (issue 29)", "writes per rollout",
		"steady RSS ≤ 75", "steady RSS ≤ 200", "idle CPU", "dashboard"} {
		if name := named(prefix); got[name] != "missed" {
			t.Errorf("bad run: %q %s, want missed", name, got[name])
		}
	}
}

// TestDay2RowsJudgeTheFileTheyQuote: a day-2 figure over its limit makes
// its row missed and lists it; a figure the file lacks is not measured.
func TestDay2RowsJudgeTheFileTheyQuote(t *testing.T) {
	no, yes := false, true
	res := &results{day2Path: "bench/results/x-day2.json", day2: &day2Report{Figures: map[string]day2Figure{
		"rss_idle": {Value: 50, Unit: "MiB", Met: &no}, "rss_idle_peak": {Value: 40, Unit: "MiB", Met: &yes},
	}}}
	var b strings.Builder
	var missed []string
	res.day2Rows(&b, &missed)
	rows := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(rows) != len(day2Targets) {
		t.Fatalf("%d rows for %d targets:\n%s", len(rows), len(day2Targets), b.String())
	}
	if !strings.Contains(rows[0], "rss_idle 50.00 MiB, rss_idle_peak 40.00 MiB | **missed**") {
		t.Errorf("idle row: %s", rows[0])
	}
	if !strings.Contains(rows[1], "| not measured |") {
		t.Errorf("a row whose figures the file lacks: %s", rows[1])
	}
	if len(missed) != 1 || !strings.Contains(missed[0], "RSS idle") {
		t.Errorf("missed list %q, want the idle row only", missed)
	}
}
