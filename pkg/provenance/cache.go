package provenance

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// Bounds of a Cache: entries kept (a digest is 71 bytes, a provenance a
// few hundred), reads run at once, and how long one read may take.
const (
	maxEntries     = 4096
	maxConcurrent  = 4
	defaultTimeout = 30 * time.Second
)

// Cache reads each digest's provenance at most once, in the background, so
// reading never delays a rollout: Lookup answers from memory, Request
// starts a read for a digest not seen yet and calls done when it is
// stored. A failed read is remembered as empty (and logged), so a
// registry that refuses is not asked again for that digest either.
type Cache struct {
	reader registry.ArtifactReader
	// Timeout bounds one read (default 30 s).
	Timeout time.Duration

	mu      sync.Mutex
	entries map[string]entry
	order   []string // insertion order, for eviction
	slots   chan struct{}
}

type entry struct {
	done bool
	info cvv1.Provenance
}

// NewCache reads through reader; a nil reader makes a Cache that never
// reads (and Lookup finds nothing).
func NewCache(reader registry.ArtifactReader) *Cache {
	return &Cache{reader: reader, Timeout: defaultTimeout, entries: map[string]entry{},
		slots: make(chan struct{}, maxConcurrent)}
}

// Lookup returns digest's provenance when it has been read; ok is false
// while the read is pending or was never asked for.
func (c *Cache) Lookup(digest string) (info cvv1.Provenance, ok bool) {
	if c == nil {
		return cvv1.Provenance{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[digest]
	return e.info, found && e.done
}

// Request starts reading digest from repo unless it was read or is being
// read. done runs after the answer is stored (not when nothing was
// started). The read ends with ctx.
func (c *Cache) Request(ctx context.Context, repo registry.Repo, digest string, done func()) {
	if c == nil || c.reader == nil || digest == "" || !c.claim(digest) {
		return
	}
	go func() {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			c.forget(digest)
			return
		}
		defer func() { <-c.slots }()
		readCtx, cancel := context.WithTimeout(ctx, c.Timeout)
		info, err := Read(readCtx, c.reader, repo, digest)
		cancel()
		if err != nil {
			// The error names the repository and digest, never credentials.
			klog.InfoS("Cannot read image provenance; the views show none", "repo", repo.Name, "digest", digest, "err", err)
			info = cvv1.Provenance{}
		}
		c.store(digest, info)
		if done != nil {
			done()
		}
	}()
}

// claim records digest as being read; false when it already is or was.
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
	c.entries[digest] = entry{}
	c.order = append(c.order, digest)
	return true
}

func (c *Cache) store(digest string, info cvv1.Provenance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, kept := c.entries[digest]; kept {
		c.entries[digest] = entry{done: true, info: info}
	}
}

// forget drops a read that never ran (the controller stopped), so a later
// Request may start it again.
func (c *Cache) forget(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, digest)
	for i, d := range c.order {
		if d == digest {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}
