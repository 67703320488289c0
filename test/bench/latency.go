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
		mv := &moved{ref: r, members: byRef[r], pushed: time.Now()}
		for _, m := range mv.members {
			mv.expects = append(mv.expects, e.track.expect(m.ns, m.deploy, m.cv, r.digest))
		}
		out[i] = mv
		return nil
	})
	return out, err
}

// settleAndMove waits for the previous scenario's rollouts, then moves n
// refs of the first cvs CVs for a latency figure detected by how.
func settleAndMove(ctx context.Context, e *env, pop *population, cvs, n int, how string) (float64, []*moved, error) {
	settled := e.settle(ctx, settleLimit)
	refs, byRef := pop.refsOf(cvs, n, nil)
	say("scale %d: moving %d refs, detection by %s", cvs, len(refs), how)
	ms, err := moveRefs(ctx, e, pop, refs, byRef)
	return settled, ms, err
}

func allExpects(ms []*moved) []*expectation {
	var xs []*expectation
	for _, m := range ms {
		xs = append(xs, m.expects...)
	}
	return xs
}

// measurePollLatency (figure 2a): tags move with no trigger; the poll that
// first sees the new digest is the first HEAD answered with it at the
// proxy, and the latency is from that answer to the earliest Deployment of
// the ref patched. The other CVs of a ref take the shared answer at their
// own poll times, which are not observable from outside; the time until
// every CV of the moved refs is patched is reported too (bounded by the
// interval, by design).
func measurePollLatency(ctx context.Context, e *env, pop *population, res *scaleResult) error {
	settled, ms, err := settleAndMove(ctx, e, pop, res.CVs, e.cfg.latencyRefs, "poll")
	if err != nil {
		return err
	}
	xs := allExpects(ms)
	complete := waitFor(ctx, e.cfg.pollInterval+30*time.Second, func() bool { return e.track.allDone(xs, false) })
	var samples, all []time.Duration
	for _, mv := range ms {
		seen, ok := e.proxy.seen(mv.ref.path, "env-prod", mv.ref.digest)
		first, last := patchedRange(e.track, mv.expects)
		if ok && !first.IsZero() && !first.Before(seen) {
			samples = append(samples, first.Sub(seen))
		}
		if !last.IsZero() {
			all = append(all, last.Sub(mv.pushed))
		}
	}
	res.PollLatency = summarize(samples, len(ms))
	res.PollLatency.Complete = complete
	res.PollLatency.SettleSeconds = settled
	res.PollLatency.MoveToAllPatchedMaxSeconds = maxDuration(all).Seconds()
	return nil
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

// measureTriggerLatency (figure 2b): tags move, then CI calls POST
// /v1/trigger with the image and tag, one image every -trigger-gap; latency
// is from sending the request to each following Deployment patched. The
// gap keeps this a latency figure: a trigger train faster than the control
// plane can write is the burst figure's subject (throughput).
func measureTriggerLatency(ctx context.Context, e *env, pop *population, res *scaleResult) error {
	settled, ms, err := settleAndMove(ctx, e, pop, res.CVs, e.cfg.triggerRefs, "trigger")
	if err != nil {
		return err
	}
	errors0 := e.current.metric("cvmanager_polls_total", `result="error"`)
	queue0, _ := e.current.get("/metrics")
	sent := make([]time.Time, len(ms))
	for i, mv := range ms {
		sent[i] = time.Now()
		if err := e.trigger(ctx, pop.env.proxy.host+"/"+mv.ref.path); err != nil {
			return err
		}
		time.Sleep(e.cfg.triggerGap) // separate calls, as CI pipelines make them
	}
	xs := allExpects(ms)
	complete := waitFor(ctx, 30*time.Second, func() bool { return e.track.allDone(xs, false) })
	queue1, _ := e.current.get("/metrics")
	var samples []time.Duration
	for i, mv := range ms {
		for _, x := range mv.expects {
			if p, _ := e.track.times(x); !p.IsZero() {
				samples = append(samples, p.Sub(sent[i]))
			}
		}
	}
	res.TriggerLatency = summarize(samples, len(xs))
	res.TriggerLatency.Complete = complete
	res.TriggerLatency.SettleSeconds = settled
	q := queueDelta(queue0, queue1)
	res.TriggerLatency.Queue = &q
	res.TriggerLatency.PollErrors = e.current.metric("cvmanager_polls_total", `result="error"`) - errors0
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

// summarize computes percentiles of samples out of want expected.
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

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
