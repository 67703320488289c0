package controller

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// enqueueJobOwner wakes the CV whose rollout waits on a Job.
func (c *Controller) enqueueJobOwner(obj any) {
	if m, ok := obj.(metav1.Object); ok && m.GetLabels()[rollout.LabelCV] != "" {
		c.queue.Add(m.GetNamespace() + "/" + m.GetLabels()[rollout.LabelCV])
	}
}

// resolveVerifier pins a verifier image's tag through the same registry
// layer (credentials, budget) as the watched images.
func (c *Controller) resolveVerifier(ctx context.Context, repo, tag string) (string, error) {
	img, err := c.opts.Resolver.Resolve(ctx, poller.ResolveRequest{Repo: repo, Tag: tag})
	if err != nil {
		return "", err
	}
	return img.Digest, nil
}
