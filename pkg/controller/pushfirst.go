package controller

import (
	"sync"
	"time"

	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/imageref"
)

// PushFirst makes refs that registry webhooks cover cheap: once a verified
// push has arrived for a repo:tag, its CVs poll only at a slow safety
// interval, and pushes (which force a poll at once) do the detecting.
//
// Why: polling every ref every interval costs the registries the same
// whether or not they push; choosing per workload between polling and
// webhooks (Keel) turns one lost webhook into a missed release. Here a lost
// or late push is caught by the safety poll and the ref goes back to normal
// polling until pushes are on time again.
type PushFirst struct {
	// SafetyInterval is how often a covered ref is still polled; 0 means
	// 10× the CV's own interval.
	SafetyInterval time.Duration
	// TrustWindow is how long one verified push keeps a ref covered; after
	// it, with no newer push, the ref is polled normally again.
	TrustWindow time.Duration
}

// DefaultTrustWindow is PushFirst.TrustWindow when unset.
const DefaultTrustWindow = 24 * time.Hour

// pushRecord is what the leader knows of one ref's pushes: when they came,
// when a poll found a move first, and the re-check of a push whose digest
// the registry did not serve yet (recheck.go). It is the ref's one
// schedule: push-first coverage and push re-checks read the same record,
// so every CV on the ref waits for the same re-check.
type pushRecord struct {
	// lastPush is when the last verified push for the ref was acted on.
	lastPush time.Time
	// lastMiss is when a poll (not a push) last found the ref moved: a push
	// that was lost, or late.
	lastMiss time.Time
	// expected is the digest a push announced that the registry did not
	// serve yet; rechecks counts the re-checks made, recheckAt is the next.
	expected  string
	rechecks  int
	recheckAt time.Time
}

// pushRaceGrace is how soon after a poll found a move its push may arrive
// and still count as on time: the registry sent it at once and a poll just
// ran in between (the bench saw 3 of 100 refs lose coverage that way, with
// pushes 100 ms behind the poll).
const pushRaceGrace = 5 * time.Second

// pushFirstInterval decides how often a CV polls: its interval, or the
// safety interval while pushes cover its ref. A ref is covered when a push
// arrived within the trust window and after the last move a poll found
// first; a push more than pushRaceGrace but within one interval after such
// a miss is presumed to be the late announcement of that same move and
// restores nothing.
func pushFirstInterval(rec pushRecord, interval, safety, window time.Duration, now time.Time) (time.Duration, bool) {
	if safety <= interval || rec.lastPush.IsZero() || now.Sub(rec.lastPush) >= window {
		return interval, false
	}
	if late := rec.lastPush.Sub(rec.lastMiss); !rec.lastMiss.IsZero() && (late < 0 || late > pushRaceGrace && late <= interval) {
		return interval, false
	}
	return safety, true
}

// pushRefs holds the schedule of each ref of this controller's CVs.
// Records live in the leader's memory: a new leader polls normally until
// the next push, which is the safe direction, and re-checks a pending push
// from scratch.
type pushRefs struct {
	mu   sync.Mutex
	refs map[string]pushRecord
}

func (p *pushRefs) update(ref string, f func(*pushRecord)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refs == nil {
		p.refs = map[string]pushRecord{}
	}
	rec := p.refs[ref]
	f(&rec)
	p.refs[ref] = rec
}

func (p *pushRefs) get(ref string) pushRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refs[ref]
}

func pushRef(cv *cvv1.ContainerVersion) string {
	return imageref.NormalizeRepo(cv.Spec.ImageRepo) + ":" + cv.Spec.Tag
}

// notePush records a verified push for cv's ref (a webhook poll request).
func (c *Controller) notePush(cv *cvv1.ContainerVersion) {
	now := c.clock.Now()
	c.pushes.update(pushRef(cv), func(r *pushRecord) { r.lastPush = now })
}

// noteMiss records that a poll, not a push, found cv's ref moved.
func (c *Controller) noteMiss(cv *cvv1.ContainerVersion) {
	if c.opts.PushFirst == nil {
		return
	}
	now := c.clock.Now()
	ref := pushRef(cv)
	if _, covered := c.pollEvery(cv, now); covered {
		klog.InfoS("A poll found a move no push announced; polling the ref normally until pushes are on time", "cv", klog.KObj(cv), "ref", ref)
	}
	c.pushes.update(ref, func(r *pushRecord) { r.lastMiss = now })
}

// pollEvery is cv's poll interval now, and whether pushes cover its ref.
func (c *Controller) pollEvery(cv *cvv1.ContainerVersion, now time.Time) (time.Duration, bool) {
	interval := pollInterval(cv)
	pf := c.opts.PushFirst
	if pf == nil {
		return interval, false
	}
	safety, window := pf.SafetyInterval, pf.TrustWindow
	if safety <= 0 {
		safety = 10 * interval
	}
	if window <= 0 {
		window = DefaultTrustWindow
	}
	return pushFirstInterval(c.pushes.get(pushRef(cv)), interval, safety, window, now)
}
