// Package digestcache keeps one answer per image digest, read at most once
// and in the background. Digests are immutable, so an answer never goes
// stale and steady state costs no registry request. The provenance reader
// and the platform gate each keep one (pkg/provenance, pkg/platform).
package digestcache

import (
	"context"
	"sync"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// Bounds of a Cache: entries kept, reads run at once, and how long one read
// may take by default.
const (
	maxEntries     = 4096
	maxConcurrent  = 4
	defaultTimeout = 30 * time.Second
)

// Bounds of a read the controller's own request budget defers.
const (
	// maxDeferrals is how often one read may be deferred before the
	// answer it gave is stored anyway.
	maxDeferrals = 60
	// minDeferral is the least wait before a deferred read runs again.
	minDeferral = time.Second
)

// ReadFunc reads digest's answer from repo. It never fails: a failure is
// part of the answer (or an empty one), stored like any other, so a
// registry that refuses is not asked again for that digest.
//
// A non-zero retryAt says the read never reached the registry because the
// controller's own budget for the host had no token in time
// (poller.DeferredByBudget): that is pacing, not an answer. The read runs
// again at retryAt, holding no slot meanwhile. Why: during a push storm a
// backlog of background reads waited past the budget's limit, and every
// provenance refused that way was stored as empty for good (7 reads given
// up in 100 announced pushes, bench/results/2026-12-07T1410-push.md).
//
// After maxDeferrals the answer of the last read is stored as it is, so a
// ReadFunc returns with retryAt the answer it wants kept in that case.
type ReadFunc[T any] func(ctx context.Context, repo registry.Repo, digest string) (answer T, retryAt time.Time)

// Cache answers Lookup from memory; Request starts a read for a digest not
// seen yet and calls done once the answer is stored, so reading never
// delays a sync. A nil *Cache, or one without a ReadFunc, knows nothing
// and reads nothing.
type Cache[T any] struct {
	read ReadFunc[T]
	// Timeout bounds one read.
	Timeout time.Duration

	// deferralWait is the least wait before a deferred read runs again
	// (minDeferral; tests shorten it).
	deferralWait time.Duration
	mu           sync.Mutex
	entries      map[string]*entry[T]
	order        []string // insertion order, for eviction
	slots        chan struct{}
	// reading counts the reads under way (Wait).
	reading sync.WaitGroup
}

type entry[T any] struct {
	done   bool
	answer T
}

// New reads through read.
func New[T any](read ReadFunc[T]) *Cache[T] {
	return &Cache[T]{read: read, Timeout: defaultTimeout, deferralWait: minDeferral, entries: map[string]*entry[T]{},
		slots: make(chan struct{}, maxConcurrent)}
}

// Lookup returns digest's answer; ok is false while the read is pending or
// was never asked for.
func (c *Cache[T]) Lookup(digest string) (answer T, ok bool) {
	if c == nil {
		return answer, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[digest]
	if e == nil || !e.done {
		return answer, false
	}
	return e.answer, true
}

// Request starts reading digest from repo unless it was read or is being
// read. done runs after the answer is stored (not when nothing started).
// The read ends with ctx; a read that never ran is forgotten, so a later
// Request may start it again.
func (c *Cache[T]) Request(ctx context.Context, repo registry.Repo, digest string, done func()) {
	if c == nil || c.read == nil || digest == "" || !c.claim(digest) {
		return
	}
	c.reading.Go(func() { c.readUntilAnswered(ctx, repo, digest, done) })
}

// Wait returns once no read the cache started is under way: after it, the
// done of every read that was started has run, so a caller (a test) can
// count them as all there will be.
func (c *Cache[T]) Wait() {
	if c != nil {
		c.reading.Wait()
	}
}

// readUntilAnswered reads digest, again after each deferral, and stores the
// answer; a read whose ctx ends before it is answered is forgotten.
func (c *Cache[T]) readUntilAnswered(ctx context.Context, repo registry.Repo, digest string, done func()) {
	for deferrals := 0; ; deferrals++ {
		answer, retryAt, ran := c.readOnce(ctx, repo, digest)
		if !ran {
			c.Forget(digest)
			return
		}
		if retryAt.IsZero() || deferrals >= maxDeferrals {
			c.store(digest, answer)
			if done != nil {
				done()
			}
			return
		}
		wait := time.NewTimer(max(time.Until(retryAt), c.deferralWait))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			c.Forget(digest)
			return
		}
	}
}

// readOnce runs one read in a slot; ran is false when ctx ended first.
func (c *Cache[T]) readOnce(ctx context.Context, repo registry.Repo, digest string) (answer T, retryAt time.Time, ran bool) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return answer, retryAt, false
	}
	defer func() { <-c.slots }()
	readCtx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	answer, retryAt = c.read(readCtx, repo, digest)
	return answer, retryAt, true
}

// Forget drops digest, read or not, so the next Request reads it again.
func (c *Cache[T]) Forget(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[digest]; !ok {
		return
	}
	delete(c.entries, digest)
	for i, d := range c.order {
		if d == digest {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// claim records digest as being read, evicting the oldest beyond the
// bound; false when it already is or was.
func (c *Cache[T]) claim(digest string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.entries[digest]; seen {
		return false
	}
	for len(c.order) >= maxEntries {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[digest] = &entry[T]{}
	c.order = append(c.order, digest)
	return true
}

func (c *Cache[T]) store(digest string, answer T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, kept := c.entries[digest]; kept {
		e.done, e.answer = true, answer
	}
}
