package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// moved is one ref pushed to a new image and the CVs expected to follow.
type moved struct {
	ref     *ref
	members []member
	pushed  time.Time
	digest  string // the digest this move pushed (the ref moves again later)
	expects []*expectation
}

// moveRefs pushes a new image to each ref and registers the rollouts the
// tracker must stamp.
func moveRefs(ctx context.Context, e *env, pop *population, refs []*ref, byRef map[*ref][]member) ([]*moved, error) {
	out := make([]*moved, len(refs))
	err := parallel(ctx, 16, len(refs), func(i int) error {
		r := refs[i]
		if err := pop.push(r); err != nil {
			return err
		}
		mv := &moved{ref: r, members: byRef[r], pushed: time.Now(), digest: r.digest}
		for _, m := range mv.members {
			mv.expects = append(mv.expects, e.track.expect(m.ns, m.deploy, m.cv, r.digest))
		}
		out[i] = mv
		return nil
	})
	return out, err
}

func allExpects(ms []*moved) []*expectation {
	var xs []*expectation
	for _, m := range ms {
		xs = append(xs, m.expects...)
	}
	return xs
}

// pushLatency is a headline latency figure: from the registry's own moment
// (the push of the new image under the tag returned, so the tag is visible
// to readers) to each following CV's Deployment patched and to the CV
// reporting the rollout finished. Rounds of tag moves repeat until at
// least -latency-samples CVs have been measured, so p99 is not the maximum.
type pushLatency struct {
	Rounds   int           `json:"rounds"`
	Complete bool          `json:"complete"`
	Patched  latencyResult `json:"pushToPatched"`
	Finished latencyResult `json:"pushToFinished"`
	// FromPoll (poll only) runs from the poll that first saw the new
	// digest at the proxy to the ref's first Deployment patched: the
	// controller's own reaction, without the wait for the poll.
	FromPoll *latencyResult `json:"pollToFirstPatched,omitempty"`
	// FromPollAll (poll only) runs from that poll to the ref's last
	// Deployment patched: the first poll after a move wakes the ref's
	// other CVs, so none waits for a poll of its own.
	FromPollAll   *latencyResult `json:"pollToAllPatched,omitempty"`
	SettleSeconds float64        `json:"settleSeconds"`
	// PollErrors are registry answers ≥ 400 counted at the proxy.
	PollErrors int64        `json:"registryErrors"`
	Queue      *queueResult `json:"queue,omitempty"`
}

// latencyRound moves refs (each returns a moved with its expectations)
// and waits for them; rounds repeat until want samples are measured.
type latencyRound func(ctx context.Context, refs []*ref, byRef map[*ref][]member) ([]*moved, error)

// measureRounds runs rounds of k refs of the first n CVs until want CVs
// have moved (at most maxRounds), waiting up to wait for each round's
// rollouts to finish, and summarizes push → patched and push → finished.
func measureRounds(ctx context.Context, e *env, pop *population, n, k int, wait time.Duration, round latencyRound) (pushLatency, []*moved) {
	var r pushLatency
	var all []*moved
	errors0 := e.proxy.errors()
	complete := true
	for cvs := 0; cvs < e.cfg.latencySamples && r.Rounds < maxRounds && ctx.Err() == nil; r.Rounds++ {
		r.SettleSeconds += e.settle(ctx, settleLimit)
		refs, byRef := pop.refsOf(n, k, nil)
		ms, err := round(ctx, refs, byRef)
		if err != nil {
			say("latency round: %v", err)
			break
		}
		xs := allExpects(ms)
		complete = waitFor(ctx, wait, func() bool { return e.track.allDone(xs, true) }) && complete
		all, cvs = append(all, ms...), cvs+len(xs)
	}
	var patched, finished []time.Duration
	for _, mv := range all {
		for _, x := range mv.expects {
			p, f := e.track.times(x)
			if !p.IsZero() {
				patched = append(patched, p.Sub(mv.pushed))
			}
			if !f.IsZero() {
				finished = append(finished, f.Sub(mv.pushed))
			}
		}
	}
	expected := len(allExpects(all))
	r.Complete, r.Patched, r.Finished = complete, summarize(patched, expected), summarize(finished, expected)
	r.PollErrors = e.proxy.errors() - errors0
	return r, all
}

// maxRounds bounds the rounds of one latency figure.
const maxRounds = 10

// measurePollLatency (figure 2a): tags move with no trigger, -latency-refs
// a round; each ref follows at the first poll of any of its CVs, so push
// → patched is bounded by the poll interval by design. The poll that
// first saw each move is the first HEAD answered with the new digest at
// the proxy.
func measurePollLatency(ctx context.Context, e *env, pop *population, res *scaleResult) error {
	say("scale %d: detection by poll, %d refs a round", res.CVs, e.cfg.latencyRefs)
	move := func(ctx context.Context, refs []*ref, byRef map[*ref][]member) ([]*moved, error) {
		return moveRefs(ctx, e, pop, refs, byRef)
	}
	r, all := measureRounds(ctx, e, pop, res.CVs, e.cfg.latencyRefs, e.cfg.pollInterval+30*time.Second, move)
	var fromPoll, fromPollAll []time.Duration
	for _, mv := range all {
		seen, ok := e.proxy.seen(mv.ref.path, "env-prod", mv.digest)
		first, last := patchedRange(e.track, mv.expects)
		if ok && !first.IsZero() && !first.Before(seen) {
			fromPoll = append(fromPoll, first.Sub(seen))
		}
		if ok && !last.IsZero() && !last.Before(seen) && allPatched(e.track, mv.expects) {
			fromPollAll = append(fromPollAll, last.Sub(seen))
		}
	}
	fp, fa := summarize(fromPoll, len(all)), summarize(fromPollAll, len(all))
	r.FromPoll, r.FromPollAll = &fp, &fa
	res.PollLatency = r
	return nil
}

// allPatched says whether every CV of xs was patched.
func allPatched(t *tracker, xs []*expectation) bool {
	for _, x := range xs {
		if p, _ := t.times(x); p.IsZero() {
			return false
		}
	}
	return true
}

// patchedRange is the earliest and latest patch among xs.
func patchedRange(t *tracker, xs []*expectation) (first, last time.Time) {
	for _, x := range xs {
		p, _ := t.times(x)
		if p.IsZero() {
			continue
		}
		if first.IsZero() || p.Before(first) {
			first = p
		}
		if p.After(last) {
			last = p
		}
	}
	return first, last
}

// measureTriggerLatency (figure 2b): CI pushes an image, then calls POST
// /v1/trigger with it at once, one image every -trigger-gap (separate
// calls, as pipelines make them; a faster train measures throughput,
// which is the burst figure's subject). Latency runs from the push.
func measureTriggerLatency(ctx context.Context, e *env, pop *population, res *scaleResult) error {
	say("scale %d: detection by trigger, %d refs a round", res.CVs, e.cfg.triggerRefs)
	queue0, _ := e.current.get("/metrics")
	pushAndTrigger := func(ctx context.Context, refs []*ref, byRef map[*ref][]member) ([]*moved, error) {
		var out []*moved
		for _, r := range refs {
			ms, err := moveRefs(ctx, e, pop, []*ref{r}, byRef)
			if err != nil {
				return out, err
			}
			out = append(out, ms...)
			if err := e.trigger(ctx, pop.env.proxy.host+"/"+r.path); err != nil {
				return out, err
			}
			time.Sleep(e.cfg.triggerGap)
		}
		return out, nil
	}
	r, _ := measureRounds(ctx, e, pop, res.CVs, e.cfg.triggerRefs, 60*time.Second, pushAndTrigger)
	queue1, _ := e.current.get("/metrics")
	q := queueDelta(queue0, queue1)
	r.Queue = &q
	res.TriggerLatency = r
	return nil
}

// trigger calls POST /v1/trigger for every CV following image:env-prod.
func (e *env) trigger(ctx context.Context, image string) error {
	proc := e.current
	body, _ := json.Marshal(map[string]string{"image": image, "tag": "env-prod"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+proc.addr+"/v1/trigger", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.triggerKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/trigger %s: %s", image, resp.Status)
	}
	return nil
}

// settleLimit bounds the wait for an earlier scenario's rollouts.
const settleLimit = 3 * time.Minute

// summarize computes percentiles of samples out of want expected, by the
// nearest-rank method: p99 of 200 samples is the 198th smallest, so with
// at least 100 samples p99 is not simply the maximum.
func summarize(samples []time.Duration, want int) latencyResult {
	r := latencyResult{Samples: len(samples), Expected: want}
	if len(samples) == 0 {
		return r
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	r.P50Ms = ms(percentile(samples, 0.50))
	r.P99Ms = ms(percentile(samples, 0.99))
	r.MaxMs = ms(samples[len(samples)-1])
	return r
}

// percentile uses the nearest-rank method on sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
