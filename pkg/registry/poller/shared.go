package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// SharedResolver makes N CVs that watch the same repo:tag cost one registry
// request per interval: a result younger than the caller's MaxAge is
// reused, and concurrent callers for the same key wait for one request
// instead of each sending their own. A caller joins a request in flight for
// at most JoinWait: a slow registry then holds the one worker asking it,
// not every worker whose CV shares the tag.
type SharedResolver struct {
	upstream ImageResolver
	clock    clock.Clock
	joinWait time.Duration

	mu      sync.Mutex
	entries map[string]*sharedEntry
}

type sharedEntry struct {
	done    chan struct{} // closed when the request in flight ends
	image   ResolvedImage
	err     error
	fetched time.Time
}

// NewSharedResolver wraps upstream; clk is injectable for tests (nil is the
// real clock).
func NewSharedResolver(upstream ImageResolver, clk clock.Clock) *SharedResolver {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &SharedResolver{upstream: upstream, clock: clk, joinWait: JoinWait, entries: map[string]*sharedEntry{}}
}

// JoinWait bounds how long a poll waits for another CV's request to the same
// repo:tag.
const JoinWait = 2 * time.Second

// Resolve implements ImageResolver.
func (s *SharedResolver) Resolve(ctx context.Context, req ResolveRequest) (ResolvedImage, error) {
	key := shareKey(req)
	s.mu.Lock()
	e, ok := s.entries[key]
	if ok && s.fresh(e, req.MaxAge) {
		s.mu.Unlock()
		return s.wait(ctx, e, req)
	}
	e = &sharedEntry{done: make(chan struct{})}
	s.entries[key] = e
	s.mu.Unlock()

	e.image, e.err = s.upstream.Resolve(ctx, req)
	e.fetched = s.clock.Now()
	if e.err != nil {
		// An error is shared with callers already waiting, never cached.
		s.mu.Lock()
		if s.entries[key] == e {
			delete(s.entries, key)
		}
		s.mu.Unlock()
	}
	close(e.done)
	return e.image, e.err
}

// fresh: a request in flight is always joined; a finished one is reused
// when it is younger than maxAge (maxAge 0 forces a new request).
func (s *SharedResolver) fresh(e *sharedEntry, maxAge time.Duration) bool {
	select {
	case <-e.done:
		return maxAge > 0 && s.clock.Now().Sub(e.fetched) < maxAge
	default:
		return true
	}
}

func (s *SharedResolver) wait(ctx context.Context, e *sharedEntry, req ResolveRequest) (ResolvedImage, error) {
	select {
	case <-e.done:
		return e.image, e.err
	default:
	}
	timer := time.NewTimer(s.joinWait)
	defer timer.Stop()
	select {
	case <-e.done:
		return e.image, e.err
	case <-timer.C:
		return ResolvedImage{}, fmt.Errorf("%s:%s: the registry has not answered another CV's request for %s; this poll is skipped", req.Repo, req.Tag, s.joinWait)
	case <-ctx.Done():
		return ResolvedImage{}, ctx.Err()
	}
}

// Forget drops cached results older than maxAge, bounding memory when CVs
// are deleted; the controller calls it now and then.
func (s *SharedResolver) Forget(maxAge time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.entries {
		select {
		case <-e.done:
			if s.clock.Now().Sub(e.fetched) >= maxAge {
				delete(s.entries, key)
			}
		default:
		}
	}
}

// shareKey identifies what a request may share: the same image, the same
// version rule, the same digest given (a version lookup for one digest
// answers nothing about another) and the same credentials (different
// credentials may see different things).
func shareKey(req ResolveRequest) string {
	h := sha256.New()
	for _, secret := range req.PullSecrets {
		h.Write(secret)
		h.Write([]byte{0})
	}
	syntax := ""
	if req.VersionSyntax != nil {
		syntax = req.VersionSyntax.String()
	}
	return req.Repo + ":" + req.Tag + "|" + syntax + "|" + req.Digest + "|" + req.Provider + "|" + hex.EncodeToString(h.Sum(nil)[:8])
}
