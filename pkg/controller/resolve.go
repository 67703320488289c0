package controller

import (
	"context"
	"regexp"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// resolve asks the registry where cv's tag points, in two steps, with the
// pull Secrets of cv and its selected workloads.
//
// First the digest alone: one HEAD, shared by every CV on the repo:tag
// whatever its versionSyntax. Only when that digest would start a rollout
// is the version tag asked for too, which for a tag like env-prod means
// listing the tags and HEADing the candidates. Most polls find the digest
// unchanged and never need the version.
//
// Why: the registry layer remembers versions per digest in memory only, so
// after a restart the first poll of every ref used to cost a tag list and
// several HEADs. At 10,000 CVs over 1,000 refs that was about 3,500 requests,
// more than one poll interval's worth of a 50/s per-host budget: the
// restart's polls ran past the interval and held workers waiting for
// budget, delaying triggered CVs queued behind them (docs/performance.md).
//
// A forced poll (trigger, webhook, release) expects a new digest, so it
// asks for the version at once: the two-step request would cost it one
// HEAD more, which a burst of triggers under a tight budget feels.
func (c *Controller) resolve(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, syntax *regexp.Regexp, maxAge time.Duration, forced bool) (poller.ResolvedImage, error) {
	if forced {
		// A trigger, webhook, release or push re-check: ahead of scheduled
		// polls and background reads in the host's budget (registry lanes),
		// and within the lane behind the forced resolves that began
		// earlier, so each trigger's follow-up requests (tag list, new
		// version tag) go before the next triggers' first ones.
		ctx = registry.WithOrigin(registry.WithLane(ctx, registry.LaneUrgent), c.clock.Now())
	}
	req := poller.ResolveRequest{
		Repo: cv.Spec.ImageRepo, Tag: cv.Spec.Tag, MaxAge: maxAge, PullSecrets: c.pullSecrets(ctx, cv, workloads),
		Provider: cv.Spec.Provider,
	}
	if forced {
		req.VersionSyntax = syntax
		return c.opts.Resolver.Resolve(ctx, req)
	}
	start := c.clock.Now()
	img, err := c.opts.Resolver.Resolve(ctx, req)
	if err != nil || syntax == nil || syncer.Decide(&cv.Status, img.Digest) != syncer.StartRollout {
		return img, err
	}
	// The version is asked for the digest just seen, so the registry layer
	// does not HEAD the tag again (that second HEAD was one of the six
	// requests a polled new digest cost). With the same maxAge the answer
	// is shared by the CVs of the ref too. A registry that cannot look up
	// by digest (ECR) resolves the tag again; if its answer differs from
	// the digest just seen, ask once more for an answer at least as new, so
	// digest and version always come from one registry answer.
	req.VersionSyntax, req.Digest = syntax, img.Digest
	full, err := c.opts.Resolver.Resolve(ctx, req)
	if err != nil || full.Digest == img.Digest {
		return full, err
	}
	req.MaxAge, req.Digest = max(c.clock.Since(start), time.Nanosecond), ""
	return c.opts.Resolver.Resolve(ctx, req)
}
