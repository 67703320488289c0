package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// measureBurst (figure 3): the tags of B CVs move at once and CI triggers
// each moved image; reported are the time until every Deployment is
// patched (cvmanager's part), until every CV reports its rollout finished
// (which also waits on the kube-controller-manager), and how often the
// apiserver answered 429.
func measureBurst(ctx context.Context, e *env, pop *population, proc *ctrlProc, res *scaleResult, profile bool) error {
	b := min(e.cfg.burst, res.CVs)
	refs, byRef := pop.refsOf(res.CVs, max(b/e.cfg.cvsPerRef, 1), nil)
	r := &res.Burst
	r.SettleSeconds = e.settle(ctx, settleLimit)
	r.Backlog = e.track.backlog()
	say("scale %d: burst of %d refs (%d CVs); control-plane backlog %d Deployments", res.CVs, len(refs), b, r.Backlog)
	api0, errors0 := e.apiMetrics(ctx), e.proxy.errors()
	apiWindow := time.Now()
	window := watchRSS(ctx, proc)
	queue0, _ := proc.get("/metrics")
	ms, err := moveRefs(ctx, e, pop, refs, byRef)
	if err != nil {
		return err
	}
	xs := allExpects(ms)
	r.CVs = len(xs)
	var cpu sync.WaitGroup
	var apiserver string // the apiserver's profile, added after the wait (res.Profiles is not locked)
	if profile {
		cpu.Add(1)
		go func() {
			defer cpu.Done()
			name := fmt.Sprintf("%d-cpu-burst.pb.gz", res.CVs)
			res.Profiles = append(res.Profiles, e.saveProfile(ctx, proc, "/debug/pprof/profile?seconds=30", name))
		}()
		cpu.Add(1)
		go func() {
			defer cpu.Done()
			apiserver = e.saveAPIServerProfile(ctx, 15*time.Second, fmt.Sprintf("%d-apiserver-cpu-burst.pb.gz", res.CVs))
		}()
	}
	start, cpu0 := time.Now(), sampleCPU()
	if err := parallel(ctx, 16, len(ms), func(i int) error { return e.trigger(ctx, e.proxy.host+"/"+ms[i].ref.path) }); err != nil {
		return err
	}
	r.TriggerSeconds = since(start)
	if profile {
		sleepCtx(ctx, 3*time.Second)
		res.Profiles = append(res.Profiles, e.saveProfile(ctx, proc, "/debug/pprof/goroutine?debug=1", fmt.Sprintf("%d-goroutines-burst.txt", res.CVs)))
	}
	r.AllPatched = waitFor(ctx, 2*time.Minute, func() bool { return e.track.allDone(xs, false) })
	queue1, _ := proc.get("/metrics")
	r.Queue = queueDelta(queue0, queue1)
	r.AllFinished = waitFor(ctx, 90*time.Second, func() bool { return e.track.allDone(xs, true) })
	r.CPU = cpuBetween(cpu0, sampleCPU())
	queue2, _ := proc.get("/metrics")
	r.FinishQueue = queueDelta(queue1, queue2)
	say("scale %d: burst CPU: %s", res.CVs, r.CPU)
	cpu.Wait()
	if apiserver != "" {
		res.Profiles = append(res.Profiles, apiserver)
	}
	var patched, rolled, finished []time.Duration
	writes := &countResult{}
	for _, x := range xs {
		if _, done := e.track.times(x); !done.IsZero() {
			writes.add(e.track.writesOf(x))
		}
		if at := e.track.rolledAt(x); !at.IsZero() {
			rolled = append(rolled, at.Sub(start))
		}
		p, f := e.track.times(x)
		if !p.IsZero() {
			patched = append(patched, p.Sub(start))
		}
		if !f.IsZero() {
			finished = append(finished, f.Sub(start))
		}
	}
	r.Patched, r.Finished = len(patched), len(finished)
	r.Patch = summarize(patched, len(xs))
	r.Finish = summarize(finished, len(xs))
	r.Rolled = summarize(rolled, len(xs))
	api1 := e.apiMetrics(ctx)
	r.BackgroundWrites = scaled(res.SteadyWritesPerSecond, time.Since(apiWindow))
	r.WritesPerRollout = writesByResource(api0, api1, r.BackgroundWrites, len(xs))
	say("scale %d: writes per rollout: %s", res.CVs, formatWrites(r.WritesPerRollout))
	r.CVWrites = writes
	r.StatusConflicts = conflicts(api0, api1, "containerversions", "status")
	r.Apiserver429 = sumMetric(api1, "apiserver_request_total", `code="429"`) - sumMetric(api0, "apiserver_request_total", `code="429"`)
	r.PollErrors = e.proxy.errors() - errors0
	r.PeakRSSMiB = window.close(proc).PeakRSSMiB
	r.Events = countRolloutEvents(ctx, e, ms, start)
	say("scale %d: burst Events %d of %d, the last %.0fs after the triggers", res.CVs, r.Events.Recorded, r.Events.Expected, r.Events.LastSeconds)
	say("scale %d: burst patched %d/%d (max %.1fs), finished %d/%d (max %.1fs)", res.CVs,
		r.Patched, r.CVs, r.Patch.MaxMs/1000, r.Finished, r.CVs, r.Finish.MaxMs/1000)
	return nil
}

// measureSharing (figure 1, second layout): half the CVs follow a ref of
// their own and half share refs ten to one; requests per interval must
// still equal the distinct refs. It runs on its own namespaces and CV
// label, with a controller limited to them by --cv-selector.
func measureSharing(ctx context.Context, e *env, cfg *config) (*economyResult, error) {
	n := cfg.sharingCVs
	half := n / 2
	pop := &population{env: e, cfg: cfg, prefix: "share"}
	refFor := func(i int) int {
		if i < half {
			return i
		}
		return half + (i-half)/cfg.cvsPerRef
	}
	say("sharing: %d CVs, half sharing refs", n)
	if err := pop.growTo(ctx, n, refFor); err != nil {
		return nil, err
	}
	refs, _ := countDistinct(pop.members)
	proc, err := startController(e, "cvmanager-sharing", "--cv-selector", "bench=share")
	if err != nil {
		return nil, err
	}
	defer proc.stop(cfg.out)
	if _, err := proc.waitReady(ctx, 5*time.Minute); err != nil {
		return nil, err
	}
	if !sleepCtx(ctx, cfg.pollInterval) { // the restart interval
		return nil, ctx.Err()
	}
	before := e.proxy.snapshot()
	if !sleepCtx(ctx, cfg.pollInterval) {
		return nil, ctx.Err()
	}
	after := e.proxy.snapshot()
	return &economyResult{
		CVs: n, IntervalSeconds: cfg.pollInterval.Seconds(), DistinctRefs: refs,
		Heads: delta(after, before, "HEAD manifests"), ManifestGets: delta(after, before, "GET manifests"),
		TagLists: delta(after, before, "GET tags"),
	}, nil
}

// queueDelta is the workqueue's mean wait and mean work per item between
// two /metrics scrapes: it tells time spent queued behind other keys from
// time spent in a sync (mostly API and registry round trips).
func queueDelta(before, after string) queueResult {
	mean := func(name string) float64 {
		n := sumMetric(after, name+"_count") - sumMetric(before, name+"_count")
		if n <= 0 {
			return 0
		}
		return 1000 * (sumMetric(after, name+"_sum") - sumMetric(before, name+"_sum")) / n
	}
	return queueResult{
		Items:      sumMetric(after, "cvmanager_workqueue_work_duration_seconds_count") - sumMetric(before, "cvmanager_workqueue_work_duration_seconds_count"),
		MeanWaitMs: mean("cvmanager_workqueue_queue_duration_seconds"),
		MeanWorkMs: mean("cvmanager_workqueue_work_duration_seconds"),
	}
}
