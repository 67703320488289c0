package provenance

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/digestcache"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// Cache reads each digest's provenance at most once, in the background
// (pkg/digestcache), so reading never delays a rollout. A failed read is
// remembered as empty (and logged), so a registry that refuses is not
// asked again for that digest either; a read this controller's own request
// budget deferred is no answer and runs again when a token is expected.
type Cache = digestcache.Cache[cvv1.Provenance]

// NewCache reads through reader; a nil reader makes a Cache that never
// reads (and Lookup finds nothing).
func NewCache(reader registry.ArtifactReader) *Cache {
	if reader == nil {
		return digestcache.New[cvv1.Provenance](nil)
	}
	return digestcache.New(func(ctx context.Context, repo registry.Repo, digest string) (cvv1.Provenance, time.Time) {
		info, err := Read(ctx, reader, repo, digest)
		if until, deferred := poller.DeferredByBudget(err); deferred {
			klog.V(2).InfoS("Image provenance read deferred by the request budget", "repo", repo.Name, "digest", digest, "until", until)
			return cvv1.Provenance{}, until
		}
		if err != nil {
			// The error names the repository and digest, never credentials.
			klog.InfoS("Cannot read image provenance; the views show none", "repo", repo.Name, "digest", digest, "err", err)
			return cvv1.Provenance{}, time.Time{}
		}
		return info, time.Time{}
	})
}
