package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Event reasons recorded on ContainerVersions.
const (
	ReasonRolloutStarted   = "RolloutStarted"
	ReasonRolloutSucceeded = "RolloutSucceeded"
	ReasonRolloutFailed    = "RolloutFailed"
	ReasonRolledBack       = "RolledBack"
	ReasonRegistryError    = "RegistryError"
	ReasonMisconfigured    = "Misconfigured"
)

// sync is the reconcile of one CV key, in three phases (docs/architecture.md):
//
//   - observe reads a snapshot once: the cached CV, the workloads it
//     selects (selected once per sync), its pending requests, and what its
//     state calls for (the workloads at rest, a registry poll when due, or
//     the world of a rollout under way);
//   - plan, a pure function, decides at most one transition: the new
//     status, the actions, the side effects;
//   - apply runs the actions, writes the status once with the snapshot's
//     resourceVersion as precondition, then emits the side effects.
//
// It returns an error only when a retry can help; a status conflict is one.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // a malformed key never becomes valid
	}
	cached, err := c.cvLister.ContainerVersions(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.stopSyncer(key)
		c.sent.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if cached.Spec.Suspend {
		c.stopSyncer(key)
		return nil
	}
	if c.echoes.awaited(key, cached.ResourceVersion, c.clock.Now()) {
		return nil // the cache lags behind this controller's own status write: its echo syncs again
	}
	snap, err := c.observe(ctx, c.syncerFor(key), cached)
	if err != nil {
		return err
	}
	return c.apply(ctx, snap, plan(snap))
}

func (c *Controller) recordRolloutMetrics(outcome string, r *cvv1.RolloutStatus, now time.Time) {
	c.metrics.RolloutsTotal.WithLabelValues(outcome).Inc()
	c.metrics.RolloutDuration.WithLabelValues(outcome).Observe(now.Sub(r.StartTime.Time).Seconds())
}

func (c *Controller) rollbackEnabled(cv *cvv1.ContainerVersion) bool {
	return cv.Spec.Rollback.Enabled || c.settings().DefaultRollback
}

func pinnedTarget(repo, version, digest string) (rollout.Target, error) {
	image, err := workload.PinnedImage(repo, version, digest)
	if err != nil {
		return rollout.Target{}, err
	}
	return rollout.Target{Version: version, Digest: digest, Image: image}, nil
}

// versionName is the version tag the registry found, or, when no tag on the
// image matches versionSyntax, the watched tag itself: the digest pin keeps
// the rollout exact either way.
func versionName(cv *cvv1.ContainerVersion, img poller.ResolvedImage) string {
	if img.Version != "" {
		return img.Version
	}
	return cv.Spec.Tag
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
