package main

import (
	"fmt"
	"math"
	"strings"
)

// markdown renders the report as the tables docs/performance.md quotes.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# cvmanager benchmark %s %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"), r.Label)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs (%s), %d GiB, kernel %s, %s. Run took %.0f s.\n\n",
		m.Host, m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.GoVersion, r.DurationSeconds)
	s := r.Settings
	fmt.Fprintf(&b, "Settings: poll interval %.0f s, %d CVs per ref, %d CVs per namespace, 0-replica Deployments%s, "+
		"controller --kube-api-qps %d --kube-api-burst %d --registry-qps %d --registry-burst %d --concurrent-syncs %d --last-polled-interval %.0fs; "+
		"one CI trigger every %.0f ms in figure 2b.%s\n\n",
		s.PollIntervalSeconds, s.CVsPerRef, s.PerNamespace, historySetting(s), s.KubeAPIQPS, s.KubeAPIBurst, s.RegistryQPS, s.RegistryBurst, s.ConcurrentSyncs,
		s.LastPolledSeconds, s.TriggerGapMs, kcmSettings(s))
	r.tableEconomy(&b)
	r.tableLatency(&b)
	r.tableBurst(&b)
	r.writesBurst(&b)
	r.tableFootprint(&b)
	r.tableRestart(&b)
	r.tableLoad(&b)
	r.tablePods(&b)
	r.tablePushFirst(&b)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "**Error:** %s\n\n", e)
	}
	return b.String()
}

func (r *report) tableEconomy(b *strings.Builder) {
	b.WriteString("## 1. Registry requests per poll interval (steady state)\n\n")
	b.WriteString("| CVs | distinct refs (lower bound) | HEAD manifests | GET manifests | GET tags | CV status writes |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range r.Scales {
		e := sc.Economy
		fmt.Fprintf(b, "| %d | %d | %d | %d | %d | %.0f |\n", sc.CVs, e.DistinctRefs, e.Heads, e.ManifestGets, e.TagLists, e.StatusWrites)
	}
	if e := r.Sharing; e != nil {
		fmt.Fprintf(b, "| %d (50%% share refs) | %d | %d | %d | %d | – |\n", e.CVs, e.DistinctRefs, e.Heads, e.ManifestGets, e.TagLists)
	}
	b.WriteString("\n")
}

// latencyIntro explains figure 2; runs of binaries before the follower
// wake (no all-of-the-ref figure) keep the words they were measured under.
const latencyIntro = "## 2. Latency from the registry's moment: image pushed under the tag → Deployment patched → rollout finished\n\n" +
	"Per CV, from the moment the push returned (the tag is visible to readers). p50 / p99 / max in ms; p99 by nearest rank " +
	"(with 200 samples, the 198th smallest); with fewer than 100 samples the p99 is the maximum and reads \"max of n\". " +
	"Samples that never arrived count as misses: when the p99's rank falls on one it reads \"missed\", and any are " +
	"reported beside the figure. *By trigger*: CI calls POST /v1/trigger right after the push. *By poll*: no "

func (r *report) tableLatency(b *strings.Builder) {
	if !r.wakesFollowers() {
		r.table(b, latencyIntro+
			"trigger, each CV follows at its next poll, so the poll interval bounds it; the last column is the controller's own "+
			"reaction, from the poll that saw the new digest at the proxy to the ref's first Deployment patched.",
			"| CVs | by trigger → patched | → finished | n patched, finished / expected (rounds) | by poll → patched | → finished | n patched, finished / expected (rounds) | poll that saw it → patched (n = refs) | registry errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
			func(sc scaleResult) string { return latencyRow(sc, false) })
		return
	}
	r.table(b, latencyIntro+
		"trigger, each ref follows at the first poll of any of its CVs, so the poll interval bounds it; the last two latency "+
		"columns are the controller's own reaction, from the poll that saw the new digest at the proxy to the ref's first "+
		"Deployment patched and to all of the ref's Deployments patched (that poll wakes the ref's other CVs).",
		"| CVs | by trigger → patched | → finished | n patched, finished / expected (rounds) | by poll → patched | → finished | n patched, finished / expected (rounds) | poll that saw it → first patched (n = refs) | → all of the ref patched | registry errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
		func(sc scaleResult) string { return latencyRow(sc, true) })
}

// wakesFollowers: the run measured the poll → all-of-the-ref figure.
func (r *report) wakesFollowers() bool {
	for _, sc := range r.Scales {
		if sc.PollLatency.FromPollAll != nil {
			return true
		}
	}
	return false
}

func latencyRow(sc scaleResult, withAll bool) string {
	p, t := sc.PollLatency, sc.TriggerLatency
	reaction := pctOf(p.FromPoll)
	if withAll {
		reaction += " | " + pctOf(p.FromPollAll)
	}
	return fmt.Sprintf("| %d | %s | %s | %s (%d) | %s | %s | %s (%d) | %s | %d |", sc.CVs,
		pct(t.Patched), pct(t.Finished), counts(t.Patched, t.Finished), t.Rounds,
		pct(p.Patched), pct(p.Finished), counts(p.Patched, p.Finished), p.Rounds,
		reaction, p.PollErrors+t.PollErrors)
}

// pctOf is pct of a figure that may be absent (an empty one reads as pct's).
func pctOf(l *latencyResult) string {
	if l == nil {
		return pct(latencyResult{})
	}
	return pct(*l)
}

// pct is "p50 / p99 / max" in ms, honest about its n: a p99 of fewer
// than 100 samples is the maximum and says so ("max of n"); samples that
// never arrived count as misses, ranked after every sample that did, so
// when the p99's rank falls on one the p99 is "missed", and any missing
// samples are reported beside it.
func pct(l latencyResult) string {
	if l.Samples == 0 {
		if l.Expected == 0 {
			return "–"
		}
		return fmt.Sprintf("none (0 of %d arrived)", l.Expected)
	}
	p99 := fmt.Sprintf("%.0f", l.P99Ms)
	switch missing := l.Expected - l.Samples; {
	case missing > 0 && nearestRank(l.Expected, 0.99) > l.Samples:
		p99 = "missed"
	case l.Samples < minSamplesForP99:
		p99 = fmt.Sprintf("max of %d", l.Samples)
	}
	out := fmt.Sprintf("%.0f / %s / %.0f", l.P50Ms, p99, l.MaxMs)
	if missing := l.Expected - l.Samples; missing > 0 {
		out += fmt.Sprintf(" (%d of %d missing)", missing, l.Expected)
	}
	return out
}

// minSamplesForP99: below 100 samples the nearest-rank p99 is the maximum.
const minSamplesForP99 = 100

// nearestRank is the 1-based rank of quantile q among n samples.
func nearestRank(n int, q float64) int {
	return max(int(math.Ceil(q*float64(n)-1e-9)), 1)
}

// counts is "patched/expected, finished/expected": the samples that
// arrived for each end of a latency figure.
func counts(patched, finished latencyResult) string {
	return fmt.Sprintf("%d/%d, %d/%d", patched.Samples, patched.Expected, finished.Samples, finished.Expected)
}

// within is a burst's "all … within" figure: the slowest sample, or how
// many of the expected never arrived.
func within(l latencyResult) string {
	if l.Samples < l.Expected {
		return fmt.Sprintf("not all: %d of %d", l.Samples, l.Expected)
	}
	return fmt.Sprintf("%.1f", l.MaxMs/1000)
}

func (r *report) tableBurst(b *strings.Builder) {
	r.table(b, "## 3. Burst: tags of many CVs move at once, CI triggers each image",
		"| CVs | burst CVs | patched | all patched within (s) | p50 patch (s) | rollouts finished | all finished within (s) | apiserver 429s | registry errors (proxy) | control-plane backlog at start |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
		func(sc scaleResult) string {
			u := sc.Burst
			return fmt.Sprintf("| %d | %d | %d | %s | %.1f | %d | %s | %.0f | %d | %d |", sc.CVs, u.CVs, u.Patched,
				within(u.Patch), u.Patch.P50Ms/1000, u.Finished, within(u.Finish), u.Apiserver429, u.PollErrors, u.Backlog)
		})
}

// writesBurst lists the API writes per rollout of each burst against the
// write budget (docs/architecture.md).
func (r *report) writesBurst(b *strings.Builder) {
	measured, background := false, false
	for _, sc := range r.Scales {
		measured = measured || len(sc.Burst.WritesPerRollout) > 0
		background = background || sc.Burst.BackgroundWrites != nil
	}
	if !measured {
		return // runs from before the count was kept
	}
	if background {
		b.WriteString("\nAPI writes per rollout in the burst (apiserver_request_total, resources cvmanager writes, less the background: " +
			"the steady interval's write rate over the burst's window, e.g. lastPolled refreshes of the CVs that did not move):\n\n")
	} else { // runs from before the background was left out
		b.WriteString("\nAPI writes per rollout in the burst (apiserver_request_total, resources cvmanager writes):\n\n")
	}
	for _, sc := range r.Scales {
		if len(sc.Burst.WritesPerRollout) > 0 {
			fmt.Fprintf(b, "- %d CVs: %s%s\n", sc.CVs, formatWrites(sc.Burst.WritesPerRollout), formatBackground(sc.Burst.BackgroundWrites))
			if u := sc.Burst; u.Rolled.Samples > 0 {
				fmt.Fprintf(b, "  - kube-controller-manager observed the patched templates: p50 %.1f s, all within %.1f s (%d of %d); "+
					"cvmanager then reported them finished: all within %.1f s\n", u.Rolled.P50Ms/1000, u.Rolled.MaxMs/1000, u.Rolled.Samples, u.CVs, u.Finish.MaxMs/1000)
			}
			if w := sc.Burst.CVWrites; w != nil && w.N > 0 {
				fmt.Fprintf(b, "  - writes of each burst CV that landed until its rollout finished (the bench's watch: exact, no background): "+
					"mean %.2f, max %d over %d CVs; CV status writes refused with 409 in the window: %.0f\n", w.Mean, w.Max, w.N, sc.Burst.StatusConflicts)
			}
			if q := sc.Burst.FinishQueue; q.Items > 0 {
				fmt.Fprintf(b, "  - workqueue: %.0f syncs until all patched, mean wait %.0f ms, mean work %.0f ms; "+
					"%.0f syncs from then until all finished, mean wait %.0f ms, mean work %.0f ms\n",
					sc.Burst.Queue.Items, sc.Burst.Queue.MeanWaitMs, sc.Burst.Queue.MeanWorkMs, q.Items, q.MeanWaitMs, q.MeanWorkMs)
			}
			if cpu := sc.Burst.CPU.String(); cpu != "" {
				fmt.Fprintf(b, "  - CPU from the triggers to the last rollout finished: %s\n", cpu)
			}
			if ev := sc.Burst.Events; ev.Expected > 0 {
				fmt.Fprintf(b, "  - Events RolloutStarted and RolloutSucceeded that reached the apiserver: %d of %d, the last created %.0f s after the triggers\n",
					ev.Recorded, ev.Expected, ev.LastSeconds)
			}
		}
	}
}

func (r *report) tableFootprint(b *strings.Builder) {
	r.table(b, "## 4. Footprint in steady state (one full poll interval; peak = largest VmRSS sampled every 200 ms within the interval, or within the burst)",
		"| CVs | RSS (MiB) | peak RSS (MiB) | heap in use (MiB) | CPU (% of a core) | goroutines | peak RSS in burst (MiB) |\n|---:|---:|---:|---:|---:|---:|---:|",
		func(sc scaleResult) string {
			f := sc.Footprint
			return fmt.Sprintf("| %d | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f |", sc.CVs, f.RSSMiB, f.PeakRSSMiB, f.HeapMiB, f.CPUPercentIdle, f.Goroutines, sc.Burst.PeakRSSMiB)
		})
	r.scrapeLines(b)
}

// scrapeLines report the timed /metrics scrape of each scale, when the run
// measured it.
func (r *report) scrapeLines(b *strings.Builder) {
	var lines []string
	for _, sc := range r.Scales {
		if x := sc.MetricsScrape; x != nil {
			lines = append(lines, fmt.Sprintf("- %d CVs: %.0f ms, %.0f ConfigMap GETs, %.0f ConfigMap LISTs, DORA series %s",
				sc.CVs, x.Ms, x.ConfigMapGets, x.ConfigMapLists, map[bool]string{true: "served", false: "missing"}[x.DORASeries]))
		}
	}
	if len(lines) > 0 {
		b.WriteString("One GET /metrics after the steady interval (the histories behind the DORA series read afresh; apiserver_request_total):\n\n" +
			strings.Join(lines, "\n") + "\n\n")
	}
}

func (r *report) tableRestart(b *strings.Builder) {
	r.table(b, "## 5. Restart: a new controller process over existing CVs\n\n"+
		"Seen from outside: HEADs and errors at the registry proxy, writes counted by the apiserver (apiserver_request_total) "+
		"over the restart and the steady interval, image changes by the bench's own watch.",
		"| CVs | ready (s) | HEADs in first interval | every ref polled after (s; -1 = not within an interval more) | registry errors | peak registry req/s | mean req/s | budget (qps/burst) | workloads patched | Deployment PATCHes | ConfigMap writes | CV status writes |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
		func(sc scaleResult) string {
			x := sc.Restart
			return fmt.Sprintf("| %d | %.1f | %d | %.0f | %d | %d | %.1f | %d/%d | %d | %.0f | %.0f | %.0f |", sc.CVs, x.ReadySeconds, x.HeadsFirstInterval,
				x.AllRefsPolledSeconds, x.RegistryErrors, x.PeakRequestsPerSecond, x.MeanRequestsPerSecond, x.BudgetQPS, x.BudgetBurst,
				x.WorkloadsPatched, x.DeploymentPatches, x.HistoryWrites, x.CVStatusWrites)
		})
}

// table writes a section: heading, the header (with its alignment row),
// one row per scale and a blank line.
func (r *report) table(b *strings.Builder, heading, header string, row func(scaleResult) string) {
	b.WriteString(heading + "\n\n" + header + "\n")
	for _, sc := range r.Scales {
		b.WriteString(row(sc) + "\n")
	}
	b.WriteString("\n")
}

func (r *report) tableLoad(b *strings.Builder) {
	b.WriteString("## 6. Cost curve and machine load\n\nThe tables above are the cost curve (one row per scale). Load average (1/5/15 min) around each scale:\n\n")
	b.WriteString("| CVs | populate (s) | control plane settled after (s) | load before | load after | busiest processes at the end |\n|---:|---:|---:|---|---|---|\n")
	for _, sc := range r.Scales {
		fmt.Fprintf(b, "| %d | %.0f | %.0f | %s | %s | %s |\n", sc.CVs, sc.PopulateSeconds, sc.ControlPlaneSettleSeconds,
			sc.LoadBefore, sc.LoadAfter, strings.Join(sc.OtherProcesses, "; "))
	}
	b.WriteString("\n")
	for _, sc := range r.Scales {
		for _, p := range sc.Profiles {
			if p != "" {
				fmt.Fprintf(b, "Profile: `%s`\n\n", p)
			}
		}
	}
}

func (r *report) tablePods(b *strings.Builder) {
	p := r.Pods
	if p == nil {
		return
	}
	fmt.Fprintf(b, "## 7. Footprint with pods no CV selects (%d CVs, fresh controller, %.0f s windows)\n\n", p.CVs, p.WindowSeconds)
	b.WriteString("| unrelated pods | running | RSS at window end (MiB) | peak RSS in window (MiB) | heap in use (MiB) | CPU (% of a core) | vs. no pods |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	var base float64
	row := func(label string, s podStep) {
		if base == 0 {
			base = s.RSSMiB
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.0f | %.1f | %+.0f%% |\n", label, s.Running, s.RSSMiB, s.PeakRSSMiB, s.HeapMiB, s.CPUPercent, 100*(s.RSSMiB/base-1))
	}
	for _, s := range p.Steps {
		row(fmt.Sprintf("%d", s.Pods), s)
	}
	if s := p.Restarted; s != nil {
		row(fmt.Sprintf("%d, controller restarted (ready in %.1f s)", s.Pods, s.ReadySeconds), *s)
	}
	b.WriteString("\n")
}

// tablePushFirst is figure 8: registry requests per interval for refs
// covered by push notifications next to polled refs, and detection of
// announced pushes before and after the refs are covered, beside figure
// 2b's trigger latency of the largest scale.
func (r *report) tablePushFirst(b *strings.Builder) {
	p := r.PushFirst
	if p == nil {
		return
	}
	fmt.Fprintf(b, "## 8. Push-first: refs announced by the registry's own push notifications\n\n"+
		"One CV per ref, poll interval %.0f s, `--webhook-safety-interval` %.0f s; the registry's notifications endpoint posts "+
		"to `/v1/webhooks/distribution`. Requests for each group's refs counted at the registry proxy over a %.0f s window "+
		"(%.1f intervals) after one round of announced pushes. *Poll first*: pushed refs whose move a poll found before "+
		"the notification arrived; they are polled normally until their next push. Target: covered refs at most 0.1 "+
		"requests per interval per ref.\n\n", p.IntervalSeconds, p.SafetySeconds, p.WindowSeconds, p.WindowSeconds/max(p.IntervalSeconds, 1))
	b.WriteString("| refs | distinct refs | requests in window | requests per interval | per distinct ref |\n|---|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		t    refTraffic
	}{{"covered by pushes", p.Covered}, {"pushed, poll first", p.PollFirst}, {"polled (never announced)", p.Polled}} {
		fmt.Fprintf(b, "| %s | %d | %d | %.1f | %.3f |\n", row.name, row.t.Refs, row.t.Requests, row.t.PerInterval, row.t.PerRef)
	}
	b.WriteString("\nDetection of announced pushes, from the push's return (p50 / p99 / max in ms, nearest rank):\n\n")
	b.WriteString("| pushes | → patched | → finished | n patched, finished / expected (rounds) | rollouts a poll started |\n|---|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		l    webhookLatency
	}{{"first push, refs still polled every interval", p.FirstPush}, {"refs covered (push-first)", p.PushFirst}} {
		fmt.Fprintf(b, "| %s | %s | %s | %s (%d) | %d |\n", row.name, pct(row.l.Patched), pct(row.l.Finished),
			counts(row.l.Patched, row.l.Finished), row.l.Rounds, row.l.ByPoll)
	}
	if n := len(r.Scales); n > 0 && r.Scales[n-1].TriggerLatency.Patched.Samples > 0 {
		t := r.Scales[n-1].TriggerLatency
		fmt.Fprintf(b, "| figure 2b, POST /v1/trigger at %d CVs | %s | %s | %s (%d) | – |\n", r.Scales[n-1].CVs,
			pct(t.Patched), pct(t.Finished), counts(t.Patched, t.Finished), t.Rounds)
	}
	b.WriteString("\n")
}

// kcmSettings names kube-controller-manager's client budget, for runs that
// recorded it.
func kcmSettings(s settings) string {
	if s.KCMAPIQPS == 0 {
		return ""
	}
	if s.KCMSyncs == 0 {
		return fmt.Sprintf(" kube-controller-manager --kube-api-qps %d --kube-api-burst %d.", s.KCMAPIQPS, s.KCMAPIBurst)
	}
	return fmt.Sprintf(" kube-controller-manager --kube-api-qps %d --kube-api-burst %d --concurrent-deployment-syncs %d.", s.KCMAPIQPS, s.KCMAPIBurst, s.KCMSyncs)
}

// historySetting names the history setting when it was on; runs recorded
// before it existed wrote no history and render as they did.
func historySetting(s settings) string {
	if s.History {
		return ", history on every CV (spec.history.enabled)"
	}
	return ""
}
