package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// The push-path figure (issue 31): a real Distribution registry posts every
// event it emits (no `ignore:`) to the controller's Distribution webhook,
// with the controller on default flags (--registry-qps 5 and
// --registry-burst 64, taken from poller.DefaultHost*; --trigger-rate 10).
// It measures announced pushes, 10 at a time, push → patched, which
// rollouts the webhook started, and the 429s the registry got (its own
// log); then what a new digest costs in repositories of 1, 42 and 500
// version tags. Its flags live here so the scenario stays additive.
var (
	pushPathOnly     = flag.Bool("push-path-only", false, "run only the push-path figure (no scales) and write <date>-push.json/.md")
	pushPathPushes   = flag.Int("push-path-pushes", 100, "announced pushes in the push-path figure")
	pushPathParallel = flag.Int("push-path-parallel", 10, "announced pushes at a time in the push-path figure: as many refs (one CV each), all pushed at once each round")
	pushPathCosts    = flag.String("push-path-version-tags", "1,42,500", "version tags in the repositories whose new-digest cost is measured")
	pushPathRounds   = flag.Int("push-path-cost-rounds", 3, "new digests per repository in the cost measurement")
	pushPathGap      = flag.Duration("push-path-gap", 2*time.Second, "pause between two rounds of pushes: 10 pushes cost 10 HEADs, 2 s of a 5/s budget, so rounds back to back measure the budget, not the path")
	pushPathTriggers = flag.Int("push-path-triggers", 20, "refs (one CV each) pushed unannounced and then triggered back to back with POST /v1/trigger")
)

// triggerCVPoll is the poll interval of the trigger figure's CVs: long, so
// their polls neither find the unannounced pushes before the triggers nor
// eat the 5/s budget the other figures measure (20 CVs at 5 s would take
// 4 of its 5 requests a second).
const triggerCVPoll = 10 * time.Minute

// pushPathResult is the figure.
type pushPathResult struct {
	Started time.Time `json:"started"`
	Machine machine   `json:"machine"`
	Flags   []string  `json:"controllerFlags"`
	// Pushes announced, Parallel at a time; PollSeconds is the CVs' poll
	// interval, which races the webhook.
	Pushes      int           `json:"pushes"`
	Parallel    int           `json:"parallel"`
	GapSeconds  float64       `json:"gapBetweenRoundsSeconds"`
	PollSeconds float64       `json:"pollIntervalSeconds"`
	Patched     latencyResult `json:"pushToPatched"`
	Finished    latencyResult `json:"pushToFinished"`
	// ByTrigger counts rollouts by what the controller says started them.
	ByTrigger      map[string]int `json:"rolloutsByTrigger"`
	WebhookPercent float64        `json:"webhookTriggeredPercent"`
	// Registry429 are the registry's own log lines of a delivery refused
	// with 429; RegistryRetries every retried delivery.
	Registry429     int `json:"registry429"`
	RegistryRetries int `json:"registryRetries"`
	// ProvenanceGivenUp counts the controller's "Cannot read image
	// provenance" lines over the whole run: digests whose provenance the
	// views will never show (nil in files from before it was counted).
	ProvenanceGivenUp *int `json:"provenanceReadsGivenUp,omitempty"`
	// RetryLines are the first of the registry's retry log lines.
	RetryLines []string `json:"registryRetryLines,omitempty"`
	// Deliveries are the controller's cvmanager_webhook_deliveries_total by
	// outcome (ignored, triggered, limited, invalid).
	Deliveries map[string]float64 `json:"webhookDeliveries"`
	// Requests are the controller's registry requests during the announced
	// pushes, by method and kind, counted at the proxy (polls included).
	Requests map[string]int64 `json:"registryRequests"`
	Seconds  float64          `json:"seconds"`
	// BudgetWaitMeanMs is the mean wait for the host budget per lane.
	BudgetWaitMeanMs map[string]float64 `json:"budgetWaitMeanMs"`
	NewDigest        []newDigestCost    `json:"newDigestCost"`
	// Triggers: -push-path-triggers refs pushed unannounced, then POST
	// /v1/trigger once for each, back to back; trigger → patched.
	Triggers triggerFigure `json:"backToBackTriggers"`
	Errors   []string      `json:"errors,omitempty"`
}

// triggerFigure is the back-to-back trigger measurement: N is the triggers
// sent, Refused those answered 429 (retried after Retry-After; the
// latency runs from the first attempt), Patched trigger → Deployment
// patched, ByTrigger what the controller says started each rollout, and
// Requests the registry requests they cost at the proxy.
type triggerFigure struct {
	N         int            `json:"n"`
	Refused   int            `json:"refused429"`
	Patched   latencyResult  `json:"triggerToPatched"`
	ByTrigger map[string]int `json:"rolloutsByTrigger"`
	Requests  int64          `json:"registryRequests"`
	// InSendOrder is each trigger → patched in ms, in the order sent (-1:
	// not patched), which shows whether triggers finish in turn.
	InSendOrder []float64 `json:"patchedMsInSendOrder,omitempty"`
}

// newDigestCost is what new digests of one repository cost: registry
// requests counted at the proxy from the push until 2 s after the rollout
// finished (so background provenance reads are in), and push → patched.
// Announced: pushed through the proxy, so the registry's notification
// names the followed host (the version tag's digest comes with it).
// Polled: pushed straight to the registry, whose notification names a
// host no CV follows, so the CV's poll finds the digest and the version
// tag is looked up by listing (push → patched includes the wait for it).
type newDigestCost struct {
	VersionTags      int           `json:"versionTags"`
	Requests         []int64       `json:"requestsPerNewDigest"`
	Patched          latencyResult `json:"pushToPatched"`
	PolledRequests   []int64       `json:"polledRequestsPerNewDigest"`
	PolledPatched    latencyResult `json:"polledPushToPatched"`
	PolledTagListing []int64       `json:"polledTagListings"`
	// Kinds and PolledKinds split the requests of all rounds by method
	// and kind ("HEAD manifests", "GET tags", "GET blobs"): which reads a
	// round's count is made of, scheduled polls in the window included.
	Kinds       map[string]int64 `json:"requestKinds,omitempty"`
	PolledKinds map[string]int64 `json:"polledRequestKinds,omitempty"`
}

// logCounter keeps counts of the registry's notification log lines only
// (Distribution logs every request; nothing else is kept).
type logCounter struct {
	mu               sync.Mutex
	retries, tooMany int
	samples          []string // the first retry lines, kept for the report
	partial          []byte
}

// maxRetrySamples is how many of the registry's retry lines the report
// keeps, so a count of retries or 429s can be checked against the lines.
const maxRetrySamples = 5

func (c *logCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := string(data[:i])
		data = data[i+1:]
		if strings.Contains(line, "retryingsink") || strings.Contains(line, "eventqueue") {
			c.retries++
			// The status as the sink words it: a bare "429" can also
			// match the event, timestamps and ports the line quotes.
			if strings.Contains(line, "status 429 ") {
				c.tooMany++
			}
			if len(c.samples) < maxRetrySamples {
				c.samples = append(c.samples, line)
			}
		}
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

func (c *logCounter) counts() (retries, tooMany int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retries, c.tooMany
}

func (c *logCounter) retryLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.samples...)
}

// pushPathRig is the scenario's registry, proxy, populations and controller.
type pushPathRig struct {
	reg   *localregistry.Registry
	log   *logCounter
	proxy *countingProxy
	proc  *ctrlProc
	pop   *population // one CV per ref, announced pushes
	cost  *population // one CV per repository of many version tags
	trig  *population // one CV per ref, triggered back to back
	tags  []int       // version tags of each cost ref
	flags []string
}

func (r *pushPathRig) stop(out string) {
	if r.proc != nil {
		r.proc.stop(out)
	}
	if r.proxy != nil {
		r.proxy.close()
	}
	if r.reg != nil {
		_ = r.reg.Close()
	}
}

// measurePushPath runs the figure and writes <date>-push.json and .md.
func measurePushPath(ctx context.Context, e *env, cfg *config) (*pushPathResult, error) {
	res := &pushPathResult{Started: time.Now().UTC(), Machine: readMachine(), Pushes: *pushPathPushes,
		Parallel: *pushPathParallel, GapSeconds: pushPathGap.Seconds(), PollSeconds: cfg.pushFirstInterval.Seconds()}
	defer func() {
		if err := res.write(cfg.out); err != nil {
			say("push path: writing the report: %v", err)
		}
	}()
	rig, err := startPushPath(ctx, e, cfg)
	if rig != nil {
		defer rig.stop(cfg.out)
		res.Flags = rig.flags
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res, err
	}
	before, start := rig.proxy.snapshot(), time.Now()
	announcedPushes(ctx, e, rig, res)
	after := rig.proxy.snapshot()
	res.Seconds = time.Since(start).Seconds()
	res.Requests = map[string]int64{}
	for k := range after {
		if d := delta(after, before, k); d > 0 {
			res.Requests[k] = d
		}
	}
	res.RegistryRetries, res.Registry429 = rig.log.counts()
	res.RetryLines = rig.log.retryLines()
	say("push path: patched p50 %.0f ms p99 %.0f ms (n=%d), %.0f%% by webhook, %d 429s in the registry's log",
		res.Patched.P50Ms, res.Patched.P99Ms, res.Patched.Samples, res.WebhookPercent, res.Registry429)
	backgroundDrained(ctx, rig.proxy)
	for i, n := range rig.tags {
		c := newDigestCosts(ctx, e, rig, rig.cost.refs[i], n)
		res.NewDigest = append(res.NewDigest, c)
		say("push path: %d version tags: requests per new digest %v announced, %v polled", n, c.Requests, c.PolledRequests)
	}
	res.Triggers = backToBackTriggers(ctx, e, rig)
	if n, err := rig.proc.countLogLines("Cannot read image provenance"); err == nil {
		res.ProvenanceGivenUp = &n
	}
	say("push path: %d back-to-back triggers: patched p50 %.0f ms, max %.0f ms (%d refused)",
		res.Triggers.N, res.Triggers.Patched.P50Ms, res.Triggers.Patched.MaxMs, res.Triggers.Refused)
	res.Deliveries = map[string]float64{}
	for _, o := range []string{"ignored", "triggered", "limited", "invalid"} {
		res.Deliveries[o] = rig.proc.metric("cvmanager_webhook_deliveries_total", `outcome="`+o+`"`)
	}
	res.BudgetWaitMeanMs = map[string]float64{}
	for _, lane := range []string{"urgent", "scheduled", "background"} {
		sum := rig.proc.metric("cvmanager_registry_budget_wait_seconds_sum", `lane="`+lane+`"`)
		n := rig.proc.metric("cvmanager_registry_budget_wait_seconds_count", `lane="`+lane+`"`)
		if n > 0 {
			res.BudgetWaitMeanMs[lane] = 1000 * sum / n
		}
	}
	return res, ctx.Err()
}

// startPushPath starts the registry (notifying a port chosen first), the
// proxy, both populations and the controller on default budgets.
func startPushPath(ctx context.Context, e *env, cfg *config) (*pushPathRig, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret := strings.Repeat("pa7h", 8)
	secretFile := filepath.Join(e.dir, "push-path-secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		return nil, err
	}
	hook := fmt.Sprintf("http://127.0.0.1:%d/v1/webhooks/distribution", port)
	rig := &pushPathRig{log: &logCounter{}}
	if rig.reg, err = localregistry.Start("127.0.0.1:0", localregistry.WithAllNotifications(hook,
		http.Header{"Authorization": {"Bearer " + secret}}), localregistry.WithLog(rig.log)); err != nil {
		return nil, err
	}
	if rig.proxy, err = startProxy(rig.reg.Host); err != nil {
		return rig, err
	}
	pcfg := *cfg
	pcfg.pollInterval = cfg.pushFirstInterval
	rig.pop = &population{env: e, cfg: &pcfg, prefix: "pushpath", host: rig.proxy.host, pushTo: rig.reg.Push}
	rig.cost = &population{env: e, cfg: &pcfg, prefix: "pushcost", host: rig.proxy.host, pushTo: rig.reg.Push}
	if rig.tags, err = ascending("-push-path-version-tags", *pushPathCosts); err != nil {
		return rig, err
	}
	if err := rig.pop.growTo(ctx, *pushPathParallel, func(i int) int { return i }); err != nil {
		return rig, err
	}
	for i, n := range rig.tags {
		r := &ref{path: fmt.Sprintf("pushcost/app-%05d", i)}
		rig.cost.refs = append(rig.cost.refs, r)
		for range n {
			if err := rig.cost.push(r); err != nil {
				return rig, err
			}
		}
	}
	if err := rig.cost.growTo(ctx, len(rig.tags), func(i int) int { return i }); err != nil {
		return rig, err
	}
	tcfg := *cfg
	tcfg.pollInterval = triggerCVPoll
	rig.trig = &population{env: e, cfg: &tcfg, prefix: "pushtrig", host: rig.proxy.host, pushTo: rig.reg.Push}
	if err := rig.trig.growTo(ctx, *pushPathTriggers, func(i int) int { return i }); err != nil {
		return rig, err
	}
	e.quiet(ctx, 2*time.Minute)
	rig.flags = []string{"--cv-selector", "bench in (pushpath,pushcost,pushtrig)", "--insecure-registry", rig.proxy.host,
		"--webhook-secret-file", secretFile, "--registry-qps", strconv.Itoa(poller.DefaultHostQPS),
		"--registry-burst", strconv.Itoa(poller.DefaultHostBurst), "--trigger-rate", "10"}
	if rig.proc, err = startControllerOn(e, "cvmanager-push-path", port, rig.flags...); err != nil {
		return rig, err
	}
	if _, err := rig.proc.waitReady(ctx, 2*time.Minute); err != nil {
		return rig, err
	}
	// Later pushes go through the proxy (uncounted) so the notifications
	// name the host the CVs follow.
	rig.pop.pushTo, rig.cost.pushTo = pushVia(rig.proxy.host), pushVia(rig.proxy.host)
	since := time.Now().Add(-cfg.pushFirstInterval)
	waitFor(ctx, 4*cfg.pushFirstInterval, func() bool {
		return !rig.proxy.allHeadedSince(rig.pop.repos(*pushPathParallel), since).IsZero()
	})
	return rig, nil
}

// announcedPushes pushes all -push-path-parallel refs at once, round after
// round, until -push-path-pushes were pushed; each round waits for its
// rollouts to finish (a push during a rollout would supersede it).
func announcedPushes(ctx context.Context, e *env, rig *pushPathRig, res *pushPathResult) {
	refs, byRef := rig.pop.refsOf(len(rig.pop.members), len(rig.pop.refs), nil)
	var all []*moved
	for pushed := 0; pushed < res.Pushes && ctx.Err() == nil; pushed += len(refs) {
		e.settle(ctx, settleLimit)
		if pushed > 0 {
			sleepCtx(ctx, *pushPathGap)
		}
		ms, err := moveRefs(ctx, e, rig.pop, refs, byRef)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			break
		}
		all = append(all, ms...)
		waitFor(ctx, time.Minute, func() bool { return e.track.allDone(allExpects(ms), true) })
	}
	waitFor(ctx, time.Minute, func() bool { return e.track.allDone(allExpects(all), true) })
	var patched, finished []time.Duration
	res.ByTrigger = map[string]int{}
	for _, mv := range all {
		for _, x := range mv.expects {
			p, f := e.track.times(x)
			if !p.IsZero() {
				patched = append(patched, p.Sub(mv.pushed))
			}
			if !f.IsZero() {
				finished = append(finished, f.Sub(mv.pushed))
			}
			res.ByTrigger[e.track.triggerOf(x)]++
		}
	}
	want := len(allExpects(all))
	res.Patched, res.Finished = summarize(patched, want), summarize(finished, want)
	res.Patched.Complete, res.Finished.Complete = res.Patched.Samples == want, res.Finished.Samples == want
	if want > 0 {
		res.WebhookPercent = 100 * float64(res.ByTrigger["webhook"]) / float64(want)
	}
}

// backgroundDrained waits (up to 90 s) until no blob has been read for 3 s:
// the announced pushes' provenance reads queue in the background lane
// behind polls, and a cost round measured while they drain waits up to
// 15 s for its own config read, so its window took in extra polls.
func backgroundDrained(ctx context.Context, proxy *countingProxy) {
	last, changed := proxy.snapshot()["GET blobs"], time.Now()
	waitFor(ctx, 90*time.Second, func() bool {
		if n := proxy.snapshot()["GET blobs"]; n != last {
			last, changed = n, time.Now()
		}
		return time.Since(changed) >= 3*time.Second
	})
}

// newDigestCosts pushes -push-path-cost-rounds new digests (each with one
// new version tag) to r, unannounced and then announced, and counts each
// one's registry requests.
//
// Unannounced first: once a push has been announced for the ref, the
// controller polls it at the push-first safety interval (10× the CV's
// interval, 50 s here), and the first unannounced push waited for that
// safety poll — by design, but it made the polled figure's maximum 48 s
// in a figure meant to show the cost and the wait for an ordinary poll.
func newDigestCosts(ctx context.Context, e *env, rig *pushPathRig, r *ref, tags int) newDigestCost {
	c := newDigestCost{VersionTags: tags}
	announced := rig.cost.pushTo
	var patched []time.Duration
	rig.cost.pushTo = rig.reg.Push
	c.PolledRequests, patched, c.PolledTagListing, c.PolledKinds = costRounds(ctx, e, rig, r)
	c.PolledPatched = summarize(patched, *pushPathRounds)
	rig.cost.pushTo = announced
	c.Requests, patched, _, c.Kinds = costRounds(ctx, e, rig, r)
	c.Patched = summarize(patched, *pushPathRounds)
	return c
}

// backToBackTriggers pushes every trigger ref straight to the registry
// (its notification names a host no CV follows, so only the trigger
// announces it), then POSTs /v1/trigger for each, one after the other as
// a CI job deploying many services would, and measures each trigger →
// its Deployment patched.
func backToBackTriggers(ctx context.Context, e *env, rig *pushPathRig) triggerFigure {
	f := triggerFigure{ByTrigger: map[string]int{}}
	e.settle(ctx, settleLimit)
	refs, byRef := rig.trig.refsOf(len(rig.trig.members), len(rig.trig.refs), nil)
	ms, err := moveRefs(ctx, e, rig.trig, refs, byRef)
	if err != nil {
		say("push path: triggers: %v", err)
		return f
	}
	before := rig.proxy.snapshot()
	sent := make([]time.Time, len(ms))
	for i, mv := range ms {
		sent[i] = time.Now()
		f.Refused += triggerUntilAccepted(ctx, e, rig.proxy.host+"/"+mv.ref.path)
		f.N++
	}
	xs := allExpects(ms)
	waitFor(ctx, time.Minute, func() bool { return e.track.allDone(xs, true) })
	var patched []time.Duration
	for i, mv := range ms {
		for _, x := range mv.expects {
			took := -1.0
			if p, _ := e.track.times(x); !p.IsZero() {
				patched = append(patched, p.Sub(sent[i]))
				took = float64(p.Sub(sent[i]).Milliseconds())
			}
			f.InSendOrder = append(f.InSendOrder, took)
			f.ByTrigger[e.track.triggerOf(x)]++
		}
	}
	f.Patched = summarize(patched, len(xs))
	f.Patched.Complete = f.Patched.Samples == len(xs)
	for k := range rig.proxy.snapshot() {
		f.Requests += delta(rig.proxy.snapshot(), before, k)
	}
	return f
}

// triggerUntilAccepted POSTs the trigger, and after a 429 waits out its
// Retry-After (1 s) and sends it again, as a CI client would; it returns
// the 429s met.
func triggerUntilAccepted(ctx context.Context, e *env, image string) int {
	refused := 0
	for ctx.Err() == nil {
		err := e.trigger(ctx, image)
		if err == nil || !strings.Contains(err.Error(), "429") || refused >= 10 {
			if err != nil {
				say("push path: trigger %s: %v", image, err)
			}
			return refused
		}
		refused++
		sleepCtx(ctx, time.Second)
	}
	return refused
}

func costRounds(ctx context.Context, e *env, rig *pushPathRig, r *ref) (requests []int64, patched []time.Duration, lists []int64, kinds map[string]int64) {
	_, byRef := rig.cost.refsOf(len(rig.cost.members), len(rig.cost.refs), nil)
	kinds = map[string]int64{}
	for range *pushPathRounds {
		e.settle(ctx, settleLimit)
		from, before, repoBefore := time.Now(), rig.proxy.snapshot(), rig.proxy.kindsFor(r.path)
		configs := rig.proxy.countFor(http.MethodGet, "blobs", r.path)
		ms, err := moveRefs(ctx, e, rig.cost, []*ref{r}, byRef)
		if err != nil {
			say("push path: cost: %v", err)
			break
		}
		xs := allExpects(ms)
		waitFor(ctx, time.Minute, func() bool { return e.track.allDone(xs, true) })
		// Background reads (provenance) follow the rollout and wait behind
		// polls in the host budget: wait for the config read (a blob GET)
		// up to 15 s, then 2 s more, so it lands in this round's window.
		waitFor(ctx, 15*time.Second, func() bool { return rig.proxy.countFor(http.MethodGet, "blobs", r.path) > configs })
		sleepCtx(ctx, 2*time.Second)
		requests = append(requests, rig.proxy.requestsBetween([]string{r.path}, from, time.Now()))
		lists = append(lists, delta(rig.proxy.snapshot(), before, "GET tags"))
		repoAfter := rig.proxy.kindsFor(r.path)
		for k := range repoAfter {
			if d := delta(repoAfter, repoBefore, k); d > 0 {
				kinds[k] += d
			}
		}
		for _, x := range xs {
			if p, _ := e.track.times(x); !p.IsZero() {
				patched = append(patched, p.Sub(ms[0].pushed))
			}
		}
	}
	return requests, patched, lists, kinds
}

// write saves <date>-push.json and .md under dir.
func (r *pushPathResult) write(dir string) error {
	if err := ensureDir(dir); err != nil {
		return err
	}
	base := filepath.Join(dir, r.Started.Format("2006-01-02T1504")+"-push")
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", js, 0o644); err != nil {
		return err
	}
	md := r.markdown()
	fmt.Print(md)
	say("push path report written to %s.json", base)
	return os.WriteFile(base+".md", []byte(md), 0o644)
}

func (r *pushPathResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Push path, %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, load %s. A real Distribution registry posts every event (no `ignore:`) to\n"+
		"`/v1/webhooks/distribution`; controller flags: `%s`; CVs poll every %.0f s.\n\n",
		r.Machine.Host, r.Machine.CPUs, loadavg(), strings.Join(r.Flags, " "), r.PollSeconds)
	fmt.Fprintf(&b, "## %d announced pushes, %d at a time, %.1f s between rounds\n\n", r.Pushes, r.Parallel, r.GapSeconds)
	b.WriteString("| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| push → patched p50 / p99 / max (n) | %.0f / %.0f / %.0f ms (%d of %d) |\n",
		r.Patched.P50Ms, r.Patched.P99Ms, r.Patched.MaxMs, r.Patched.Samples, r.Patched.Expected)
	fmt.Fprintf(&b, "| push → finished p50 / p99 (n) | %.0f / %.0f ms (%d) |\n", r.Finished.P50Ms, r.Finished.P99Ms, r.Finished.Samples)
	fmt.Fprintf(&b, "| started by the webhook | %.0f %% (%v) |\n", r.WebhookPercent, r.ByTrigger)
	fmt.Fprintf(&b, "| 429s in the registry's log (all retries) | %d (%d) |\n", r.Registry429, r.RegistryRetries)
	fmt.Fprintf(&b, "| webhook deliveries by outcome | %v |\n", r.Deliveries)
	fmt.Fprintf(&b, "| registry requests during the pushes (%.0f s, polls included) | %v |\n", r.Seconds, r.Requests)
	fmt.Fprintf(&b, "| mean wait for the host budget by lane (ms) | %v |\n", r.BudgetWaitMeanMs)
	if r.ProvenanceGivenUp != nil {
		fmt.Fprintf(&b, "| provenance reads given up (whole run, from the controller's log) | %d |\n", *r.ProvenanceGivenUp)
	}
	b.WriteString("\n")
	if len(r.RetryLines) > 0 {
		b.WriteString("The registry's first retry lines (a 429 reads `status 429`):\n\n```\n" + strings.Join(r.RetryLines, "\n") + "\n```\n\n")
	}
	b.WriteString("## New digest cost\n\nRequests at the proxy for the repository from the push to 2 s after the rollout finished and provenance read the config" +
		" (resolve, tag list, new tags, provenance reads). Polled (measured first): unannounced, found by the CV's poll" +
		" (push → patched includes the wait for it); announced (after): the notification names the version tag's digest.\n\n" +
		"| version tags | announced: requests per new digest | push → patched p50 / max | polled: requests (tag listings) | push → patched p50 / max |\n|---|---|---|---|---|\n")
	for _, c := range r.NewDigest {
		fmt.Fprintf(&b, "| %d | %v | %.0f / %.0f ms | %v (%v) | %.0f / %.0f ms |\n", c.VersionTags, c.Requests, c.Patched.P50Ms, c.Patched.MaxMs,
			c.PolledRequests, c.PolledTagListing, c.PolledPatched.P50Ms, c.PolledPatched.MaxMs)
	}
	if len(r.NewDigest) > 0 && (r.NewDigest[0].Kinds != nil || r.NewDigest[0].PolledKinds != nil) {
		b.WriteString("\nRequests of all rounds by kind (scheduled polls that fell in a round's window included):\n\n")
		for _, c := range r.NewDigest {
			fmt.Fprintf(&b, "- %d version tags: announced %v; polled %v\n", c.VersionTags, c.Kinds, c.PolledKinds)
		}
	}
	t := r.Triggers
	fmt.Fprintf(&b, "\n## %d triggers back to back\n\nEach of %d refs pushed unannounced (its CV polls every %.0f min), then POST /v1/trigger"+
		" for each, one after the other; trigger → Deployment patched. A 429 is retried after its Retry-After, timed from the first attempt.\n\n"+
		"| figure | value |\n|---|---|\n", t.N, t.N, triggerCVPoll.Minutes())
	fmt.Fprintf(&b, "| trigger → patched p50 / max (n) | %.0f / %.0f ms (%d of %d) |\n", t.Patched.P50Ms, t.Patched.MaxMs, t.Patched.Samples, t.Patched.Expected)
	fmt.Fprintf(&b, "| triggers answered 429 | %d |\n", t.Refused)
	fmt.Fprintf(&b, "| rollouts by trigger | %v |\n", t.ByTrigger)
	fmt.Fprintf(&b, "| registry requests | %d |\n", t.Requests)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\nError: %s\n", e)
	}
	return b.String()
}
