package main

import (
	"strings"
	"testing"
)

// TestSideTargetsJudgeEachFileAgainstItsIssue: the push-path, write-back
// and fleet rows are met only by figures within their issue's targets, a
// miss is listed, and a file that does not exist is "not measured".
func TestSideTargetsJudgeEachFileAgainstItsIssue(t *testing.T) {
	triggers := func(p50 float64) *pushPathResult {
		return &pushPathResult{Triggers: triggerFigure{N: 20, Patched: latencyResult{Samples: 20, P50Ms: p50, MaxMs: p50 + 20}}}
	}
	row := func(s sideResults, name string) string {
		var b strings.Builder
		var missed []string
		res := &results{side: s}
		res.sideRows(&b, &missed)
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.Contains(line, name) {
				return line + " missed:" + strings.Join(missed, ";")
			}
		}
		t.Fatalf("no row %q in:\n%s", name, b.String())
		return ""
	}
	if got := row(sideResults{push: triggers(120), pushPath: "bench/results/x-push.json"}, "back-to-back triggers"); !strings.Contains(got, "| met |") {
		t.Errorf("a 120 ms median must meet the 150 ms target: %s", got)
	}
	got := row(sideResults{push: triggers(186), pushPath: "bench/results/x-push.json"}, "back-to-back triggers")
	if !strings.Contains(got, "**missed**") || !strings.Contains(got, "p50 186 / max 206 ms") {
		t.Errorf("a 186 ms median must be a listed miss: %s", got)
	}
	if got := row(sideResults{}, "fleet view"); !strings.Contains(got, "not measured") {
		t.Errorf("no fleet file must read not measured: %s", got)
	}
	slow := &writeBackResult{Visible: latencyResult{Samples: 50, P50Ms: 200, P99Ms: 300}}
	if got := row(sideResults{writeBack: slow, writeBackPath: "bench/results/x-writeback-finish.json"}, "git write-back"); !strings.Contains(got, "**missed**") {
		t.Errorf("50 samples are fewer than the 100 the target asks for: %s", got)
	}
}
