package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// measureScale grows the population to n CVs, starts a fresh controller
// (which is also the restart figure: the CVs were last polled by a previous
// controller, or seeded as if they had been) and runs every scenario.
func measureScale(ctx context.Context, e *env, pop *population, n int) (*scaleResult, error) {
	cfg := e.cfg
	res := &scaleResult{CVs: n, LoadBefore: loadavg()}
	say("scale %d: creating CVs, Deployments and refs", n)
	begin := time.Now()
	if err := pop.growTo(ctx, n, func(i int) int { return i / cfg.cvsPerRef }); err != nil {
		return res, err
	}
	res.PopulateSeconds = since(begin)
	res.ControlPlaneSettleSeconds = e.quiet(ctx, 5*time.Minute)
	res.Refs, res.Namespaces = countDistinct(pop.members[:n])
	say("scale %d: %d CVs over %d refs in %d namespaces created in %.0fs", n, n, res.Refs, res.Namespaces, res.PopulateSeconds)

	proc, err := startController(e, fmt.Sprintf("cvmanager-%d", n))
	if err != nil {
		return res, err
	}
	defer proc.stop(cfg.out)
	profile := cfg.profile && n == cfg.scales[len(cfg.scales)-1]
	steps := []struct {
		name string
		run  func() error
	}{
		{"restart", func() error { return measureRestart(ctx, e, proc, res, pop, profile) }},
		{"latency", func() error { return measurePollLatency(ctx, e, pop, res) }},
		{"trigger", func() error { return measureTriggerLatency(ctx, e, pop, res) }},
		{"burst", func() error { return measureBurst(ctx, e, pop, proc, res, profile) }},
	}
	for _, step := range steps {
		if cfg.skip[step.name] {
			continue
		}
		if err := step.run(); err != nil {
			return res, err
		}
	}
	res.LoadAfter = loadavg()
	res.OtherProcesses = busyProcesses()
	return res, nil
}

// measureRestart covers figure 5 (time to ready, how the first interval's
// polls spread, whether anything rolled out again) around the steady
// interval of figures 1 and 4. Everything but the time to ready is seen
// from outside: HEADs at the proxy, writes at the apiserver, image changes
// by the bench's watch.
func measureRestart(ctx context.Context, e *env, proc *ctrlProc, res *scaleResult, pop *population, profile bool) error {
	interval := e.cfg.pollInterval
	changes, api0, errs0 := e.track.changes(), e.apiMetrics(ctx), e.proxy.errors()
	ready, err := proc.waitReady(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	readyAt := time.Now()
	heads0 := e.proxy.snapshot()
	res.Restart.ReadySeconds = ready.Seconds()
	say("scale %d: ready in %.1fs; watching one interval of restart polls", res.CVs, ready.Seconds())
	if !sleepCtx(ctx, time.Until(readyAt.Add(interval))) {
		return ctx.Err()
	}
	r := &res.Restart
	r.PeakRequestsPerSecond, r.MeanRequestsPerSecond = e.proxy.maxPerSecond(readyAt, readyAt.Add(interval))
	r.BudgetQPS, r.BudgetBurst = e.cfg.registryQPS, e.cfg.registryBurst
	r.HeadsFirstInterval = delta(e.proxy.snapshot(), heads0, "HEAD manifests")
	// The steady interval starts once every ref has been polled once:
	// until then the restart's first polls would be counted as steady state.
	repos := pop.repos(res.CVs)
	var allAt time.Time
	waitFor(ctx, interval, func() bool { allAt = e.proxy.allHeadedSince(repos, readyAt); return !allAt.IsZero() })
	r.AllRefsPolledSeconds = -1
	if !allAt.IsZero() {
		r.AllRefsPolledSeconds = allAt.Sub(readyAt).Seconds()
	}
	if err := measureSteady(ctx, e, proc, res, profile); err != nil {
		return err
	}
	api1 := e.apiMetrics(ctx)
	r.WorkloadsPatched = e.track.changes() - changes
	r.RegistryErrors = e.proxy.errors() - errs0
	r.DeploymentPatches = apiDelta(api0, api1, `resource="deployments"`, `verb="PATCH"`)
	r.HistoryWrites = apiDelta(api0, api1, `resource="configmaps"`, `verb="PUT"`) + apiDelta(api0, api1, `resource="configmaps"`, `verb="POST"`)
	r.CVStatusWrites = apiDelta(api0, api1, cvStatusUpdate...)
	return nil
}

// apiDelta is the growth of the apiserver's request count matching filters.
func apiDelta(before, after string, filters ...string) float64 {
	return sumMetric(after, "apiserver_request_total", filters...) - sumMetric(before, "apiserver_request_total", filters...)
}

// measureSteady covers figures 1 and 4 over one poll interval: registry
// requests, CV status writes, and the controller's RSS (sampled through
// the interval), CPU and goroutines.
func measureSteady(ctx context.Context, e *env, proc *ctrlProc, res *scaleResult, profile bool) error {
	interval := e.cfg.pollInterval
	say("scale %d: measuring one steady interval (%s)", res.CVs, interval)
	before, apiBefore := e.proxy.snapshot(), e.apiMetrics(ctx)
	window := watchRSS(ctx, proc)
	profiled := make(chan struct{})
	if profile {
		// The CPU profile covers half of the steady interval.
		go func() {
			defer close(profiled)
			name := fmt.Sprintf("%d-cpu-steady.pb.gz", res.CVs)
			seconds := max(int(interval.Seconds())/2, 1)
			res.Profiles = append(res.Profiles, e.saveProfile(ctx, proc, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), name))
		}()
	} else {
		close(profiled)
	}
	if !sleepCtx(ctx, interval) {
		return ctx.Err()
	}
	<-profiled
	f := window.close(proc)
	after, apiAfter := e.proxy.snapshot(), e.apiMetrics(ctx)
	res.SteadyWritesPerSecond = writeRates(apiBefore, apiAfter, interval)
	res.Economy = economyResult{
		IntervalSeconds: interval.Seconds(), DistinctRefs: res.Refs,
		Heads: delta(after, before, "HEAD manifests"), ManifestGets: delta(after, before, "GET manifests"),
		TagLists:     delta(after, before, "GET tags"),
		StatusWrites: apiDelta(apiBefore, apiAfter, cvStatusUpdate...),
	}
	scrape := e.timeScrape(ctx, proc)
	res.MetricsScrape = &scrape
	res.Footprint = footprintResult{
		CPUPercentIdle: f.CPUPercent, RSSMiB: f.RSSMiB, PeakRSSMiB: f.PeakRSSMiB,
		Goroutines: steadyGoroutines(proc), HeapMiB: proc.metric("go_memstats_heap_inuse_bytes") / (1 << 20),
	}
	// Every scale's goroutines by stack, so a difference in the count
	// between scales can be read off (a few kilobytes of text each).
	res.Profiles = append(res.Profiles, e.saveProfile(ctx, proc, "/debug/pprof/goroutine?debug=1", fmt.Sprintf("%d-goroutines-steady.txt", res.CVs)))
	if profile {
		res.Profiles = append(res.Profiles, e.saveProfile(ctx, proc, "/debug/pprof/heap", fmt.Sprintf("%d-heap.pb.gz", res.CVs)))
	}
	return nil
}

// steadyGoroutines is the fewest goroutines of three samples 500 ms
// apart: one sample can catch a request's goroutines in flight (the 1133
// run read 130 at 10,000 CVs against 129 at 100, right after a scrape).
func steadyGoroutines(proc *ctrlProc) float64 {
	fewest := proc.metric("go_goroutines")
	for range 2 {
		time.Sleep(500 * time.Millisecond)
		if n := proc.metric("go_goroutines"); n >= 0 && (fewest < 0 || n < fewest) {
			fewest = n
		}
	}
	return fewest
}

// timeScrape times one GET /metrics and counts the ConfigMap reads the
// apiserver served meanwhile. Nothing scraped the controller during the
// steady interval, so its history cache has expired and the scrape reads
// the histories afresh.
func (e *env) timeScrape(ctx context.Context, proc *ctrlProc) scrapeResult {
	api0 := e.apiMetrics(ctx)
	start := time.Now()
	body, _ := proc.get("/metrics")
	r := scrapeResult{Ms: float64(time.Since(start).Microseconds()) / 1000,
		DORASeries: strings.Contains(body, "cvmanager_dora_")}
	api1 := e.apiMetrics(ctx)
	r.ConfigMapGets = apiDelta(api0, api1, `resource="configmaps"`, `verb="GET"`)
	r.ConfigMapLists = apiDelta(api0, api1, `resource="configmaps"`, `verb="LIST"`)
	return r
}

// cvStatusUpdate selects the apiserver's count of CV status updates: in
// steady state only cvmanager writes them (lastPolled, now and then).
// (apiserver_request_total names an update by its HTTP method, PUT.)
var cvStatusUpdate = []string{`resource="containerversions"`, `subresource="status"`, `verb="PUT"`}

// apiMetrics reads the apiserver's /metrics as admin.
func (e *env) apiMetrics(ctx context.Context) string {
	b, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		say("apiserver /metrics: %v", err)
	}
	return string(b)
}

// saveProfile fetches a pprof endpoint into the results' pprof folder,
// named after the run's results file (a later run, or the old binary's
// run beside it, must not overwrite it), and returns the file name (""
// on failure, which is reported, not fatal).
func (e *env) saveProfile(ctx context.Context, proc *ctrlProc, endpoint, name string) string {
	path := filepath.Join(e.cfg.out, "pprof", e.cfg.runName+"-"+name)
	if err := ensureDir(filepath.Dir(path)); err != nil {
		say("profile %s: %v", name, err)
		return ""
	}
	if err := proc.fetch(ctx, endpoint, path); err != nil {
		say("profile %s: %v", name, err)
		return ""
	}
	return path
}

// saveAPIServerProfile saves the kube-apiserver's CPU profile over the
// next d, read with the bench's admin credentials: in a burst the
// apiserver uses most of the machine, and this says on what.
func (e *env) saveAPIServerProfile(ctx context.Context, d time.Duration, name string) string {
	path := filepath.Join(e.cfg.out, "pprof", e.cfg.runName+"-"+name)
	if err := ensureDir(filepath.Dir(path)); err != nil {
		say("profile %s: %v", name, err)
		return ""
	}
	body, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + 30*time.Second).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(path, body, 0o644)
	}
	if err != nil {
		say("profile %s: %v", name, err)
		return ""
	}
	return path
}

func countDistinct(ms []member) (refs, namespaces int) {
	r, ns := map[*ref]bool{}, map[string]bool{}
	for _, m := range ms {
		r[m.ref], ns[m.ns] = true, true
	}
	return len(r), len(ns)
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
