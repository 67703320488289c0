package controller

import (
	"context"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// requestProvenance starts reading the provenance of a digest about to be
// rolled out, in the background: the rollout goes on without it, and the
// CV is synced again when it is known (see fillProvenance). A digest
// already read costs nothing.
func (c *Controller) requestProvenance(ctx context.Context, cv *cvv1.ContainerVersion, digest string) {
	cache := c.opts.Provenance
	if cache == nil {
		return
	}
	if _, ok := cache.Lookup(digest); ok {
		return
	}
	repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: registry.Auth{PullSecrets: c.pullSecrets(ctx, cv)}}
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

// fillProvenance copies provenance read since the last status write into
// status: the rollout's, or, when the rollout finished first, the running
// version's. It reports whether cv changed; it never asks the registry.
func (c *Controller) fillProvenance(cv *cvv1.ContainerVersion) bool {
	st := &cv.Status
	if r := st.Rollout; r != nil {
		if r.Provenance == nil {
			r.Provenance = c.provenanceOf(r.Digest)
			return r.Provenance != nil
		}
		return false
	}
	if st.Provenance == nil && st.SuccessDigest != "" {
		st.Provenance = c.provenanceOf(st.SuccessDigest)
		return st.Provenance != nil
	}
	return false
}

// withProvenance returns a copy of cached with newly read provenance, or
// false when there is nothing new (the common case: no copy is made).
func (c *Controller) withProvenance(cached *cvv1.ContainerVersion) (*cvv1.ContainerVersion, bool) {
	if c.opts.Provenance == nil || !missingProvenance(&cached.Status) {
		return nil, false
	}
	cv := cached.DeepCopy()
	if !c.fillProvenance(cv) {
		return nil, false
	}
	return cv, true
}

func missingProvenance(st *cvv1.ContainerVersionStatus) bool {
	if st.Rollout != nil {
		return st.Rollout.Provenance == nil
	}
	return st.Provenance == nil && st.SuccessDigest != ""
}
