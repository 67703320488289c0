package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cvmanager.dev/cvmanager/test/benchresults"
)

// target is one of the performance targets docs/performance.md states,
// judged on a results file: the figure it quotes, whether the figure meets
// the target, and measured=false when the run did not measure it.
type target struct {
	name string
	eval func(r *report, d *benchresults.Dashboard) (figure string, met, measured bool)
}

// largest is the run's largest scale (nil when none ran).
func (r *report) largest() *scaleResult {
	if len(r.Scales) == 0 {
		return nil
	}
	return &r.Scales[len(r.Scales)-1]
}

// scale is the run's scale of n CVs (nil when it did not run).
func (r *report) scale(n int) *scaleResult {
	for i := range r.Scales {
		if r.Scales[i].CVs == n {
			return &r.Scales[i]
		}
	}
	return nil
}

// perScale joins one figure per scale: "a / b / c at 100 / 1,000 / 10,000 CVs".
func (r *report) perScale(f func(sc scaleResult) string) string {
	var figs, cvs []string
	for _, sc := range r.Scales {
		figs, cvs = append(figs, f(sc)), append(cvs, thousands(sc.CVs))
	}
	return strings.Join(figs, " / ") + " at " + strings.Join(cvs, " / ") + " CVs"
}

// p99Met says whether a latency's p99 is under limit ms, counting missing
// samples as misses: a p99 that missed, or none at all, does not meet it.
// With fewer than 100 samples the p99 is the maximum, which is at least
// as strict.
func p99Met(l latencyResult, limit float64) bool {
	if l.Samples == 0 || (l.Samples < l.Expected && nearestRank(l.Expected, 0.99) > l.Samples) {
		return false
	}
	return l.P99Ms < limit
}

// p99Text is a latency's p99 as pct prints it, in ms.
func p99Text(l latencyResult) string {
	parts := strings.SplitN(pct(l), " / ", 3)
	if len(parts) < 3 {
		return pct(l)
	}
	if strings.HasPrefix(parts[1], "max of") {
		return fmt.Sprintf("%s = %.0f", parts[1], l.MaxMs)
	}
	return parts[1]
}

// targets are the targets of issues 9, 24, 25, 29 and 32, the poll
// interval's promise and the dashboard's budget, in the order
// docs/performance.md lists them.
var targets = []target{
	{"10,000 CVs over 1,000 refs: HEADs per steady interval ≤ distinct refs, 0 manifest GETs, 0 tag lists", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		sc := r.scale(10000)
		if sc == nil {
			return "", false, false
		}
		e := sc.Economy
		return fmt.Sprintf("%s HEADs for %s refs, %d GETs, %d tag lists", thousands(int(e.Heads)), thousands(e.DistinctRefs), e.ManifestGets, e.TagLists),
			e.Heads <= int64(e.DistinctRefs) && e.ManifestGets == 0 && e.TagLists == 0, true
	}},
	{"50% of CVs sharing refs: HEADs per interval = distinct refs", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		e := r.Sharing
		if e == nil {
			return "", false, false
		}
		return fmt.Sprintf("%d HEADs for %d refs, %d GETs", e.Heads, e.DistinctRefs, e.ManifestGets), e.Heads <= int64(e.DistinctRefs) && e.ManifestGets == 0, true
	}},
	{"detection by poll, from the poll that saw the move to the first Deployment patched: p99 < 1 s at every scale", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met, any := true, false
		fig := r.perScale(func(sc scaleResult) string {
			if sc.PollLatency.FromPoll == nil {
				return "not run"
			}
			any = true
			met = met && p99Met(*sc.PollLatency.FromPoll, 1000)
			return p99Text(*sc.PollLatency.FromPoll) + " ms"
		})
		return "p99 " + fig, met, any
	}},
	{"detection by poll, from the push: every CV patched within its poll interval and 5 s more, at every scale", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met, any := true, false
		limit := r.Settings.PollIntervalSeconds*1000 + 5000
		fig := r.perScale(func(sc scaleResult) string {
			p := sc.PollLatency.Patched
			if p.Expected == 0 {
				return "not run"
			}
			any = true
			met = met && p.Samples == p.Expected && p.MaxMs <= limit
			return fmt.Sprintf("max %.0f ms (%d of %d)", p.MaxMs, p.Samples, p.Expected)
		})
		return fig, met, any
	}},
	{"detection by trigger, from the push to the Deployment patched: p99 < 500 ms at every scale", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met, any := true, false
		fig := r.perScale(func(sc scaleResult) string {
			t := sc.TriggerLatency.Patched
			any = any || t.Expected > 0
			met = met && p99Met(t, 500)
			return p99Text(t) + " ms"
		})
		return "p99 " + fig, met, any
	}},
	{"burst (issue 29): 100 CVs all patched ≤ 1.5 s and finished ≤ 2.5 s; 1,000 CVs moving among 1,000 and among 10,000: all patched ≤ 8 s and finished ≤ 12 s; no apiserver 429s, no registry errors", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met, any := true, false
		var figs []string
		for _, sc := range r.Scales {
			u := sc.Burst
			if u.CVs == 0 {
				continue
			}
			patchLimit, finishLimit := 8000.0, 12000.0
			if u.CVs < 1000 {
				patchLimit, finishLimit = 1500, 2500
			}
			any = true
			met = met && u.AllPatched && u.AllFinished && u.Patched == u.CVs && u.Finished == u.CVs &&
				u.Patch.MaxMs <= patchLimit && u.Finish.MaxMs <= finishLimit && u.Apiserver429 == 0 && u.PollErrors == 0
			figs = append(figs, fmt.Sprintf("%s / %s s among %s CVs (%d/%d patched, %d finished, %.0f 429s, %d registry errors)",
				within(u.Patch), within(u.Finish), thousands(sc.CVs), u.Patched, u.CVs, u.Finished, u.Apiserver429, u.PollErrors))
		}
		return "all patched / all finished within " + strings.Join(figs, "; "), met, any
	}},
	{"writes per rollout in the burst: ≤ 1 workload patch, ≤ 2 CV status writes, ≤ 1 history write, 0 CV metadata writes", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met, any := true, false
		fig := r.perScale(func(sc scaleResult) string {
			w := sc.Burst.WritesPerRollout
			if len(w) == 0 {
				return "not counted"
			}
			any = true
			exact := sc.Burst.CVWrites
			for k, limit := range writeBudget {
				if exact != nil && exact.N > 0 && strings.Contains(k, "containerversions") {
					continue // judged below from the exact count
				}
				met = met && w[k] <= limit+0.005
			}
			if exact == nil || exact.N == 0 {
				return fmt.Sprintf("%.2f patches, %.2f status writes", w["PATCH deployments"], w["PUT containerversions/status"])
			}
			// The CV's writes that landed, status and metadata together, against
			// the status budget (metadata's is 0).
			met = met && exact.Mean <= writeBudget["PUT containerversions/status"]+0.005
			return fmt.Sprintf("%.2f patches, %.2f CV writes (exact; %.2f status writes less the background)",
				w["PATCH deployments"], exact.Mean, w["PUT containerversions/status"])
		})
		return fig, met, any
	}},
	{"steady RSS ≤ 75 MiB at 1,000 CVs (issue 29)", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		sc := r.scale(1000)
		if sc == nil {
			return "", false, false
		}
		return fmt.Sprintf("%.0f MiB", sc.Footprint.RSSMiB), sc.Footprint.RSSMiB <= 75, true
	}},
	{"steady RSS ≤ 200 MiB at 10,000 CVs (issue 32)", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		sc := r.scale(10000)
		if sc == nil {
			return "", false, false
		}
		return fmt.Sprintf("%.0f MiB (peak in the burst %.0f MiB)", sc.Footprint.RSSMiB, sc.Burst.PeakRSSMiB), sc.Footprint.RSSMiB <= 200, true
	}},
	{"idle CPU < 5% of a core at 10,000 CVs, 1-minute polls", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		sc := r.scale(10000)
		if sc == nil {
			return "", false, false
		}
		return fmt.Sprintf("%.1f%%", sc.Footprint.CPUPercentIdle), sc.Footprint.CPUPercentIdle < 5, true
	}},
	{"goroutines do not grow with CVs (no more at the largest scale than at the smallest)", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		if len(r.Scales) < 2 {
			return "", false, false
		}
		fig := r.perScale(func(sc scaleResult) string { return fmt.Sprintf("%.0f", sc.Footprint.Goroutines) })
		return fig, r.largest().Footprint.Goroutines <= r.Scales[0].Footprint.Goroutines, true
	}},
	{"restart: busiest second of registry requests within the budget; nothing rolled out again", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		met := len(r.Scales) > 0
		fig := r.perScale(func(sc scaleResult) string {
			x := sc.Restart
			met = met && x.PeakRequestsPerSecond <= int64(x.BudgetQPS) && x.WorkloadsPatched == 0 && x.DeploymentPatches == 0 && x.HistoryWrites == 0
			return fmt.Sprintf("%d req/s of %d, %d patched", x.PeakRequestsPerSecond, x.BudgetQPS, x.WorkloadsPatched)
		})
		return fig, met, len(r.Scales) > 0
	}},
	{"RSS with 20,000 unrelated pods within 10% of RSS with none (running controller)", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		base, last, ok := podSteps(r)
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%.0f MiB with %s pods against %.0f MiB with none (%+.0f%%)", last.RSSMiB, thousands(last.Pods), base.RSSMiB, 100*(last.RSSMiB/base.RSSMiB-1)),
			last.RSSMiB <= 1.1*base.RSSMiB, true
	}},
	{"the same, controller restarted in the full cluster", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		base, _, ok := podSteps(r)
		if !ok || r.Pods.Restarted == nil {
			return "", false, false
		}
		s := r.Pods.Restarted
		return fmt.Sprintf("%.0f MiB against %.0f MiB (%+.0f%%)", s.RSSMiB, base.RSSMiB, 100*(s.RSSMiB/base.RSSMiB-1)), s.RSSMiB <= 1.1*base.RSSMiB, true
	}},
	{"push-first: refs covered by push notifications cost ≤ 0.1 requests per interval per ref", func(r *report, _ *benchresults.Dashboard) (string, bool, bool) {
		p := r.PushFirst
		if p == nil {
			return "", false, false
		}
		return fmt.Sprintf("%.3f over %d covered refs", p.Covered.PerRef, p.Covered.Refs), p.Covered.PerRef <= 0.1+1e-6, true
	}},
	{"dashboard: 1,000 rows render and filter < 1 s in headless Chromium", func(_ *report, d *benchresults.Dashboard) (string, bool, bool) {
		if d == nil {
			return "", false, false
		}
		return fmt.Sprintf("render %.0f ms, text filter %.0f ms, state filter %.0f ms (slowest of %d loads)", d.RenderMs, d.TextFilterMs, d.StateFilterMs, d.Loads), d.Met(), true
	}},
}

// podSteps are figure 7's window with no pods and its last window.
func podSteps(r *report) (base, last podStep, ok bool) {
	if r.Pods == nil || len(r.Pods.Steps) < 2 || r.Pods.Steps[0].RSSMiB == 0 {
		return base, last, false
	}
	return r.Pods.Steps[0], r.Pods.Steps[len(r.Pods.Steps)-1], true
}

// thousands prints n with a comma every three digits, as the docs do.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// results are the newest results files the doc's generated part quotes.
type results struct {
	benchPath, dashPath, day2Path string // relative to the repository root
	bench                         *report
	dash                          *benchresults.Dashboard
	day2                          *day2Report
	side                          sideResults // push path, write-back, fleet (sidetargets.go)
}

// newestResults reads the newest bench report (a JSON without a kind
// suffix) and the newest dashboard timings under root/bench/results.
func newestResults(root string) (*results, error) {
	dir := filepath.Join(root, "bench", "results")
	benchPath, err := benchresults.Newest(dir, ".json", func(name string) bool {
		return !strings.HasSuffix(name, "-"+benchresults.DashboardKind+".json") && fullRun(filepath.Join(dir, name))
	})
	if err != nil || benchPath == "" {
		return nil, fmt.Errorf("no bench results in %s (%v)", dir, err)
	}
	res := &results{bench: &report{}}
	if err := readJSON(benchPath, res.bench); err != nil {
		return nil, err
	}
	res.benchPath, _ = filepath.Rel(root, benchPath)
	if res.dash, res.dashPath, err = readNewest[benchresults.Dashboard](root, "-"+benchresults.DashboardKind+".json"); err != nil {
		return nil, err
	}
	day2Path, err := newestDay2(dir)
	if err != nil {
		return nil, err
	}
	if err := res.loadSide(root); err != nil {
		return nil, err
	}
	return res, res.loadDay2(root, day2Path)
}

// fullRun reports whether path is a bench report that measured every
// standard scale (100, 1,000 and 10,000 CVs) with its latency figures. The targets table quotes the
// newest such run; partial runs (one scale, a before/after comparison of
// one figure) and the other figures' files (push path, fleet, write-back,
// day-2) are quoted where they are discussed, not in its place.
func fullRun(path string) bool {
	var r struct {
		Scales []struct {
			CVs            int                  `json:"cvs"`
			PollLatency    struct{ Rounds int } `json:"pollLatency"`
			TriggerLatency struct{ Rounds int } `json:"triggerLatency"`
		} `json:"scales"`
	}
	if readJSON(path, &r) != nil {
		return false
	}
	seen := map[int]bool{}
	for _, sc := range r.Scales {
		seen[sc.CVs] = sc.PollLatency.Rounds > 0 && sc.TriggerLatency.Rounds > 0 // every figure, not a burst alone
	}
	return seen[100] && seen[1000] && seen[10000]
}

// readNewest reads the newest results file under root/bench/results whose
// name ends in suffix, and returns it with its path relative to root
// (nil and "" when there is none).
func readNewest[T any](root, suffix string) (*T, string, error) {
	path, err := benchresults.Newest(filepath.Join(root, "bench", "results"), suffix, nil)
	if err != nil || path == "" {
		return nil, "", err
	}
	v := new(T)
	if err := readJSON(path, v); err != nil {
		return nil, "", err
	}
	rel, _ := filepath.Rel(root, path)
	return v, rel, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// link is a markdown link from docs/ to a results file (its .md).
func link(path string) string {
	md := strings.TrimSuffix(path, ".json") + ".md"
	return fmt.Sprintf("[`%s`](../%s)", filepath.Base(md), md)
}

// targetsSection is the generated part of docs/performance.md: every
// target with its latest figure and verdict, the misses listed, and the
// newest run's summary table.
func (res *results) targetsSection() string {
	var b strings.Builder
	r := res.bench
	var scales []string
	for _, sc := range r.Scales {
		scales = append(scales, thousands(sc.CVs))
	}
	fmt.Fprintf(&b, "Newest bench run: %s (%s, %d CPUs, scales %s CVs, 1-minute load average %s before the first scale and %s after the last). ",
		link(res.benchPath), r.Started.Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, strings.Join(scales, ", "), firstLoad(r), lastLoad(r))
	if res.dash != nil {
		fmt.Fprintf(&b, "Newest dashboard timings: %s.", link(res.dashPath))
	} else {
		b.WriteString("No dashboard timings recorded yet (`go test -run '^$' -bench BenchmarkDashboard1000RowsInChromium ./test/e2e/` writes them).")
	}
	if res.day2 != nil {
		fmt.Fprintf(&b, " Day-2 figures (issue 32), written by `go test ./test/day2` in every `make test`: %s.", link(res.day2Path))
	}
	b.WriteString("\n\n| target | latest figure | verdict | results file |\n|---|---|---|---|\n")
	var missed []string
	for _, t := range targets {
		fig, met, measured := t.eval(r, res.dash)
		file := link(res.benchPath)
		if strings.HasPrefix(t.name, "dashboard") {
			file = "–"
			if res.dash != nil {
				file = link(res.dashPath)
			}
		}
		targetRow(&b, &missed, t.name, fig, file, met, measured)
	}
	res.sideRows(&b, &missed)
	res.day2Rows(&b, &missed)
	if len(missed) > 0 {
		b.WriteString("\nMissed in the newest run:\n\n" + strings.Join(missed, "\n") + "\n")
	}
	b.WriteString("\nThe newest run's tables, as its results file renders them:\n\n")
	b.WriteString(r.summaryTables())
	return b.String()
}

// targetRow writes a target's row with its verdict, and lists a miss.
func targetRow(b *strings.Builder, missed *[]string, name, fig, file string, met, measured bool) {
	verdict := "met"
	switch {
	case !measured:
		fig, verdict = "not measured in this run", "not measured"
	case !met:
		verdict = "**missed**"
		*missed = append(*missed, fmt.Sprintf("- %s: %s.", name, fig))
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, fig, verdict, file)
}

func firstLoad(r *report) string {
	if len(r.Scales) == 0 {
		return "?"
	}
	return strings.Fields(r.Scales[0].LoadBefore + " ?")[0]
}

func lastLoad(r *report) string {
	if len(r.Scales) == 0 {
		return "?"
	}
	return strings.Fields(r.largest().LoadAfter + " ?")[0]
}

// summaryTables are figures 1 to 5 of the report, as its markdown has them.
func (r *report) summaryTables() string {
	var b strings.Builder
	r.tableEconomy(&b)
	r.tableLatency(&b)
	r.tableBurst(&b)
	r.tableFootprint(&b)
	r.tableRestart(&b)
	return strings.ReplaceAll("\n"+b.String(), "\n## ", "\n#### ")[1:]
}

// Markers around the generated part of docs/performance.md.
const (
	beginGenerated = "<!-- BEGIN generated by `go run ./test/bench -docs` from the newest results; edit test/bench/targets.go, not this part -->"
	endGenerated   = "<!-- END generated -->"
)

// replaceGenerated returns doc with the part between the markers replaced.
func replaceGenerated(doc, section string) (string, error) {
	i, j := strings.Index(doc, beginGenerated), strings.Index(doc, endGenerated)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q … %q not found", beginGenerated, endGenerated)
	}
	return doc[:i+len(beginGenerated)] + "\n" + section + doc[j:], nil
}

// writeDocs regenerates docs/performance.md's generated part under root.
func writeDocs(root string) error {
	res, err := newestResults(root)
	if err != nil {
		return err
	}
	path := filepath.Join(root, "docs", "performance.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceGenerated(string(doc), res.targetsSection())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
