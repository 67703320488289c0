package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"cvmanager.dev/cvmanager/test/localregistry"
)

// pushFirstResult (figure 8) is the economy of push-first mode: refs a
// registry announces with verified push notifications are polled only at
// the safety interval, and pushed tags are still detected at once.
type pushFirstResult struct {
	IntervalSeconds float64 `json:"intervalSeconds"`
	SafetySeconds   float64 `json:"safetyIntervalSeconds"`
	WindowSeconds   float64 `json:"windowSeconds"`
	// Covered are the pushed refs whose last move the push notification
	// announced first; PollFirst those whose move a poll found before the
	// notification arrived (polled normally until their next push, by
	// design); Polled refs no registry announces, in the same controller.
	Covered   refTraffic `json:"covered"`
	PollFirst refTraffic `json:"pollFirst"`
	Polled    refTraffic `json:"polled"`
	// FirstPush is detection of the first notified push, while the refs
	// are still polled normally; PushFirst of pushes to covered refs.
	FirstPush webhookLatency `json:"firstPush"`
	PushFirst webhookLatency `json:"pushFirst"`
}

// refTraffic is the registry requests for a set of refs over the window,
// counted at the bench's proxy.
type refTraffic struct {
	Refs        int     `json:"refs"`
	Requests    int64   `json:"requests"`
	PerInterval float64 `json:"requestsPerInterval"`
	// PerRef is requests per interval / distinct refs (1 when every ref
	// is polled every interval; push-first's target is at most 0.1).
	PerRef float64 `json:"perDistinctRef"`
}

// webhookLatency runs from the push's return to the Deployment patched and
// to the rollout finished, for pushes the registry itself announced.
type webhookLatency struct {
	Rounds   int           `json:"rounds"`
	Patched  latencyResult `json:"pushToPatched"`
	Finished latencyResult `json:"pushToFinished"`
	// ByPoll counts rollouts the controller says a poll started (the poll
	// saw the move before the notification arrived).
	ByPoll int `json:"startedByPoll"`
}

// pushFirstRig is the scenario's own registry (its notifications go to
// the scenario's controller), its proxy and its two populations.
type pushFirstRig struct {
	reg     *localregistry.Registry
	proxy   *countingProxy
	proc    *ctrlProc
	covered *population // on reg, announced by its notifications
	polled  *population // on the bench's registry, never announced
}

func (r *pushFirstRig) stop(out string) {
	r.proc.stop(out)
	if r.proxy != nil {
		r.proxy.close()
	}
	if r.reg != nil {
		_ = r.reg.Close()
	}
}

// measurePushFirst (figure 8): -push-first-refs CVs, one per ref, on a
// registry whose own notifications reach the controller's Distribution
// webhook, beside as many CVs on refs no registry announces. After one
// round of announced pushes, it counts each group's registry requests over
// two safety intervals, then measures detection of further pushes.
func measurePushFirst(ctx context.Context, e *env, cfg *config) (*pushFirstResult, error) {
	safety := 10 * cfg.pushFirstInterval
	rig, err := startPushFirst(ctx, e, cfg, safety)
	if rig != nil {
		defer rig.stop(cfg.out)
	}
	if err != nil {
		return nil, err
	}
	res := &pushFirstResult{IntervalSeconds: cfg.pushFirstInterval.Seconds(), SafetySeconds: safety.Seconds()}
	say("push-first: %d announced refs and %d polled refs, interval %s, safety interval %s",
		cfg.pushFirstRefs, cfg.pushFirstRefs, cfg.pushFirstInterval, safety)
	start := time.Now()
	first := pushRounds(ctx, e, rig.covered, cfg, 1)
	res.FirstPush = first.latency
	roundTook := time.Since(start)
	// Each announced ref next polls a safety interval after its push's poll:
	// the window starts between two such clusters and spans two intervals.
	if roundTook < safety && !sleepCtx(ctx, time.Until(start.Add(roundTook+(safety-roundTook)/2))) {
		return res, ctx.Err()
	}
	window := 2 * safety
	from := time.Now()
	say("push-first: counting registry requests over %s", window)
	if !sleepCtx(ctx, window) {
		return res, ctx.Err()
	}
	to := time.Now()
	res.WindowSeconds = to.Sub(from).Seconds()
	covered, pollFirst := first.byTrigger(e.track)
	intervals := to.Sub(from).Seconds() / cfg.pushFirstInterval.Seconds()
	res.Covered = traffic(rig.proxy, covered, from, to, intervals)
	res.PollFirst = traffic(rig.proxy, pollFirst, from, to, intervals)
	res.Polled = traffic(e.proxy, rig.polled.repos(cfg.pushFirstRefs), from, to, intervals)
	say("push-first: %.3f requests per interval per covered ref (%d refs), %.3f per polled ref",
		res.Covered.PerRef, res.Covered.Refs, res.Polled.PerRef)
	rounds := max((cfg.latencySamples+cfg.pushFirstRefs-1)/cfg.pushFirstRefs, 1)
	res.PushFirst = pushRounds(ctx, e, rig.covered, cfg, min(rounds, maxRounds)).latency
	say("push-first: covered pushes patched p50 %.0f ms, p99 %.0f ms (%d samples)",
		res.PushFirst.Patched.P50Ms, res.PushFirst.Patched.P99Ms, res.PushFirst.Patched.Samples)
	return res, ctx.Err()
}

// startPushFirst starts the scenario's registry (notifying a controller
// port chosen first), its proxy, both populations and the controller.
func startPushFirst(ctx context.Context, e *env, cfg *config, safety time.Duration) (*pushFirstRig, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret := strings.Repeat("pu5h", 8)
	secretFile := filepath.Join(e.dir, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		return nil, err
	}
	hook := fmt.Sprintf("http://127.0.0.1:%d/v1/webhooks/distribution", port)
	rig := &pushFirstRig{}
	if rig.reg, err = localregistry.Start("127.0.0.1:0", localregistry.WithNotifications(hook, http.Header{"Authorization": {"Bearer " + secret}})); err != nil {
		return nil, err
	}
	if rig.proxy, err = startProxy(rig.reg.Host); err != nil {
		return rig, err
	}
	pcfg := *cfg
	pcfg.pollInterval = cfg.pushFirstInterval
	// The first images go straight to the registry: their notifications
	// (delivered, retried, once the controller listens) name its own host,
	// which no CV follows, so no ref is covered yet. The CVs exist, seeded,
	// before the controller starts, as in every other scenario.
	rig.covered = &population{env: e, cfg: &pcfg, prefix: "pushfirst", host: rig.proxy.host, pushTo: rig.reg.Push}
	rig.polled = &population{env: e, cfg: &pcfg, prefix: "pfpolled"}
	n := cfg.pushFirstRefs
	for _, pop := range []*population{rig.covered, rig.polled} {
		if err := pop.growTo(ctx, n, func(i int) int { return i }); err != nil {
			return rig, err
		}
	}
	e.quiet(ctx, 2*time.Minute)
	rig.proc, err = startControllerOn(e, "cvmanager-push-first", port,
		"--cv-selector", "bench in (pushfirst,pfpolled)", "--insecure-registry", rig.proxy.host,
		"--webhook-secret-file", secretFile, "--webhook-safety-interval", safety.String())
	if err != nil {
		return rig, err
	}
	if _, err := rig.proc.waitReady(ctx, 2*time.Minute); err != nil {
		return rig, err
	}
	// Later pushes go through the proxy, uncounted, so the registry's
	// notifications name the host the CVs follow.
	rig.covered.pushTo = pushVia(rig.proxy.host)
	polledSince := time.Now().Add(-cfg.pushFirstInterval)
	waitFor(ctx, 2*cfg.pushFirstInterval, func() bool {
		return !rig.proxy.allHeadedSince(rig.covered.repos(n), polledSince).IsZero() &&
			!e.proxy.allHeadedSince(rig.polled.repos(n), polledSince).IsZero()
	})
	return rig, nil
}

// pushVia pushes a new random image under tags through host (a proxy),
// marked as the bench's own traffic.
func pushVia(host string) func(path string, tags ...string) (string, error) {
	return func(path string, tags ...string) (string, error) {
		img, err := random.Image(256, 1)
		if err != nil {
			return "", err
		}
		digest, err := img.Digest()
		if err != nil {
			return "", err
		}
		for _, tag := range tags {
			ref, err := name.NewTag(host+"/"+path+":"+tag, name.Insecure)
			if err != nil {
				return "", err
			}
			if err := remote.Write(ref, img, remote.WithUserAgent(benchPushAgent)); err != nil {
				return "", err
			}
		}
		return digest.String(), nil
	}
}

// pushedRounds is what pushRounds moved, and the latency it measured.
type pushedRounds struct {
	moved   []*moved
	latency webhookLatency
}

// pushRounds pushes every ref of pop once a round, one push every
// -push-first-gap (the registry announces each), and waits for the
// rollouts to finish before the next round.
func pushRounds(ctx context.Context, e *env, pop *population, cfg *config, rounds int) pushedRounds {
	var out pushedRounds
	for ; out.latency.Rounds < rounds && ctx.Err() == nil; out.latency.Rounds++ {
		e.settle(ctx, settleLimit)
		refs, byRef := pop.refsOf(len(pop.members), len(pop.refs), nil)
		var xs []*expectation
		for _, r := range refs {
			ms, err := moveRefs(ctx, e, pop, []*ref{r}, byRef)
			if err != nil {
				say("push-first round: %v", err)
				break
			}
			out.moved = append(out.moved, ms...)
			xs = append(xs, allExpects(ms)...)
			sleepCtx(ctx, cfg.pushFirstGap)
		}
		waitFor(ctx, time.Minute, func() bool { return e.track.allDone(xs, true) })
	}
	var patched, finished []time.Duration
	for _, mv := range out.moved {
		for _, x := range mv.expects {
			p, f := e.track.times(x)
			if !p.IsZero() {
				patched = append(patched, p.Sub(mv.pushed))
			}
			if !f.IsZero() {
				finished = append(finished, f.Sub(mv.pushed))
			}
			if e.track.triggerOf(x) == "poll" {
				out.latency.ByPoll++
			}
		}
	}
	expected := len(allExpects(out.moved))
	l := &out.latency
	l.Patched, l.Finished = summarize(patched, expected), summarize(finished, expected)
	l.Patched.Complete, l.Finished.Complete = l.Patched.Samples == expected, l.Finished.Samples == expected
	return out
}

// byTrigger splits the moved refs by what started their rollout: a poll
// that saw the move before the notification arrived, or (covered from now
// on) the notification.
func (p pushedRounds) byTrigger(t *tracker) (covered, pollFirst []string) {
	for _, mv := range p.moved {
		byPoll := false
		for _, x := range mv.expects {
			byPoll = byPoll || t.triggerOf(x) == "poll"
		}
		if byPoll {
			pollFirst = append(pollFirst, mv.ref.path)
		} else {
			covered = append(covered, mv.ref.path)
		}
	}
	return covered, pollFirst
}

// traffic is repos' registry requests at proxy within [from, to).
func traffic(p *countingProxy, repos []string, from, to time.Time, intervals float64) refTraffic {
	t := refTraffic{Refs: len(repos), Requests: p.requestsBetween(repos, from, to)}
	if intervals > 0 {
		t.PerInterval = float64(t.Requests) / intervals
	}
	if t.Refs > 0 {
		t.PerRef = t.PerInterval / float64(t.Refs)
	}
	return t
}
