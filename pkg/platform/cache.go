package platform

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// Bounds of a Cache: entries kept, reads run at once, and how long a read
// may take.
const (
	maxEntries     = 4096
	maxConcurrent  = 4
	defaultTimeout = 30 * time.Second
)

// Index is what the gate knows of one digest: whether it is an index and
// which platforms it lists. Err is set when the manifest could not be
// read; the gate then holds the rollout (a registry that answers HEAD but
// not GET should not let an unchecked index through) until Retry.
type Index struct {
	IsIndex   bool
	Platforms []Platform
	Err       error
}

// Cache reads each digest's manifest at most once, in the background, as
// provenance.Cache does: Lookup answers from memory, Request starts a read
// for a digest not seen yet and calls done when it is stored. Digests are
// immutable, so an answer never goes stale: steady state costs 0 requests.
type Cache struct {
	reader registry.ArtifactReader
	// Timeout bounds one read (default 30 s).
	Timeout time.Duration

	mu      sync.Mutex
	entries map[string]*cacheEntry
	order   []string
	slots   chan struct{}
}

type cacheEntry struct {
	done  bool
	index Index
}

// NewCache reads through reader.
func NewCache(reader registry.ArtifactReader) *Cache {
	return &Cache{reader: reader, Timeout: defaultTimeout, entries: map[string]*cacheEntry{},
		slots: make(chan struct{}, maxConcurrent)}
}

// Lookup returns what is known of digest; ok is false while the read is
// pending or was never asked for.
func (c *Cache) Lookup(digest string) (Index, bool) {
	if c == nil {
		return Index{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[digest]
	if e == nil || !e.done {
		return Index{}, false
	}
	return e.index, true
}

// Request starts reading digest from repo unless it was read or is being
// read; done runs once the answer is stored.
func (c *Cache) Request(ctx context.Context, repo registry.Repo, digest string, done func()) {
	if c == nil || c.reader == nil || digest == "" || !c.claim(digest) {
		return
	}
	go func() {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			c.Retry(digest)
			return
		}
		defer func() { <-c.slots }()
		readCtx, cancel := context.WithTimeout(ctx, c.Timeout)
		index := Read(readCtx, c.reader, repo, digest)
		cancel()
		c.store(digest, index)
		if done != nil {
			done()
		}
	}()
}

// Read fetches digest's manifest once and returns its platforms.
func Read(ctx context.Context, reader registry.ArtifactReader, repo registry.Repo, digest string) Index {
	m, err := reader.Manifest(ctx, repo, digest)
	if err != nil {
		return Index{Err: fmt.Errorf("reading manifest %s of %s: %w", digest, repo.Name, err)}
	}
	platforms, isIndex, err := IndexPlatforms(string(m.Descriptor.MediaType), m.Body)
	return Index{IsIndex: isIndex, Platforms: platforms, Err: err}
}

// Retry forgets digest (a failed read), so the next Request reads again.
func (c *Cache) Retry(digest string) {
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

func (c *Cache) claim(digest string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.entries[digest]; seen {
		return false
	}
	for len(c.order) >= maxEntries {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[digest] = &cacheEntry{}
	c.order = append(c.order, digest)
	return true
}

func (c *Cache) store(digest string, index Index) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, kept := c.entries[digest]; kept {
		e.done, e.index = true, index
	}
}
