package controller

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
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

// recordStep persists the rollout's progress before the next step starts.
func (c *Controller) recordStep(ctx context.Context, cv *cvv1.ContainerVersion, step string) error {
	if cv.Status.Rollout.Step == step {
		return nil
	}
	cv.Status.Rollout.Step = step
	if err := c.updateStatus(ctx, cv); err != nil {
		return fmt.Errorf("recording step %s: %w", step, err)
	}
	return nil
}
