package controller

import (
	"context"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// requestProvenance starts reading the provenance of a digest about to be
// rolled out, in the background: the rollout goes on without it, and the
// CV is synced again when it is known (see fillProvenance). A digest
// already read costs nothing. The pull Secrets are those of cv and its
// selected workloads.
func (c *Controller) requestProvenance(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, digest string) {
	cache := c.opts.Provenance
	if cache == nil {
		return
	}
	if _, ok := cache.Lookup(digest); ok {
		return
	}
	repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: registry.Auth{PullSecrets: c.pullSecrets(ctx, cv, workloads)}}
	key := namespacedKey(cv)
	cache.Request(ctx, repo, digest, func() { c.queue.Add(key) })
}

// provenanceOf is the known provenance of digest, or nil while it is
// unread or when the image carries none.
func (c *Controller) provenanceOf(digest string) *cvv1.Provenance {
	info, ok := c.opts.Provenance.Lookup(digest)
	if !ok || provenance.Empty(info) {
		return nil
	}
	return &info
}

// unwrittenProvenance is provenance the cache holds for the digest status
// lacks it for, and that digest: the rollout's, else the running
// version's. Most syncs find nothing and copy nothing.
func (c *Controller) unwrittenProvenance(st *cvv1.ContainerVersionStatus) (*cvv1.Provenance, string) {
	if c.opts.Provenance == nil {
		return nil, ""
	}
	if r := st.Rollout; r != nil {
		if r.Provenance != nil {
			return nil, ""
		}
		return c.provenanceOf(r.Digest), r.Digest
	}
	if st.Provenance != nil || st.SuccessDigest == "" {
		return nil, ""
	}
	return c.provenanceOf(st.SuccessDigest), st.SuccessDigest
}
