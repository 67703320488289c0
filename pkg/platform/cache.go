package platform

import (
	"context"
	"fmt"
	"time"

	"cvmanager.dev/cvmanager/pkg/digestcache"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// Index is what the gate knows of one digest: whether it is an index and
// which platforms it lists. Err is set when the manifest could not be
// read; the gate then holds the rollout (a registry that answers HEAD but
// not GET should not let an unchecked index through), and the controller
// forgets the answer so that the next poll reads it again.
type Index struct {
	IsIndex   bool
	Platforms []Platform
	Err       error
}

// Cache reads each digest's manifest at most once, in the background
// (pkg/digestcache): steady state costs 0 requests.
type Cache = digestcache.Cache[Index]

// NewCache reads through reader; a nil reader makes a Cache that never
// reads.
func NewCache(reader registry.ArtifactReader) *Cache {
	if reader == nil {
		return digestcache.New[Index](nil)
	}
	return digestcache.New(func(ctx context.Context, repo registry.Repo, digest string) (Index, time.Time) {
		idx := Read(ctx, reader, repo, digest)
		if until, deferred := poller.DeferredByBudget(idx.Err); deferred {
			// Pacing: the gate stays pending until the read runs. Should
			// the cache give up deferring, it keeps this answer, whose Err
			// holds the rollout like any failed read.
			return idx, until
		}
		return idx, time.Time{}
	})
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
