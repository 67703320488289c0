package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// Steps of a rollout before the strategy runs, kept in status.rollout.step.
// A step once recorded is never redone, so a restarted controller does not
// verify or migrate twice, even when the finished Job has been cleaned up.
const (
	stepStarted     = ""
	stepPreVerified = "PreVerified"
	stepMigrated    = "Migrated"
)

// setupJobs watches only the Jobs cvmanager created (they carry the CV
// label), so the cache does not hold every Job of the cluster.
func (c *Controller) setupJobs() {
	c.jobFactory = kubeinformers.NewSharedInformerFactoryWithOptions(c.kube, 0,
		kubeinformers.WithNamespace(c.opts.Namespace),
		kubeinformers.WithTransform(stripManagedFields),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = rollout.LabelCV }))
	informer := c.jobFactory.Batch().V1().Jobs()
	c.jobs = &rollout.Jobs{Client: c.kube, Lister: informer.Lister(), Resolve: c.resolveVerifier}
	_, _ = informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueJobOwner,
		UpdateFunc: func(_, obj any) { c.enqueueJobOwner(obj) },
	})
	c.synced = append(c.synced, informer.Informer().HasSynced)
}

// enqueueJobOwner wakes the CV whose rollout waits on a Job.
func (c *Controller) enqueueJobOwner(obj any) {
	if m, ok := obj.(metav1.Object); ok && m.GetLabels()[rollout.LabelCV] != "" {
		c.queue.Add(m.GetNamespace() + "/" + m.GetLabels()[rollout.LabelCV])
	}
}

// resolveVerifier pins a verifier image's tag through the same registry
// layer (credentials, budget) as the watched images.
func (c *Controller) resolveVerifier(ctx context.Context, repo, tag string) (string, error) {
	img, err := c.opts.Resolver.Resolve(ctx, syncer.ResolveRequest{Repo: repo, Tag: tag})
	if err != nil {
		return "", err
	}
	return img.Digest, nil
}

// prepare runs what must happen before any workload changes: the
// container's verifications, then the migration Jobs. It returns Succeeded
// once both are done (at once when the CV has neither).
func (c *Controller) prepare(ctx context.Context, cv *cvv1.ContainerVersion, target rollout.Target) (rollout.Progress, error) {
	r := cv.Status.Rollout
	if r.Step == stepStarted {
		steps := c.jobs.VerifySteps(cv, target, rollout.PhaseVerifyBefore, cv.Spec.Container.Verify)
		if p, err := c.jobs.RunAll(ctx, cv, target, steps); err != nil || p.Phase != rollout.Succeeded {
			return p, err
		}
		if err := c.recordStep(ctx, cv, stepPreVerified); err != nil {
			return rollout.Progress{}, err
		}
	}
	if r.Step == stepPreVerified {
		if p, err := c.jobs.RunAll(ctx, cv, target, c.jobs.MigrationSteps(cv, target)); err != nil || p.Phase != rollout.Succeeded {
			return p, err
		}
		if err := c.recordStep(ctx, cv, stepMigrated); err != nil {
			return rollout.Progress{}, err
		}
	}
	return rollout.Progress{Phase: rollout.Succeeded}, nil
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

// deadline is when an unfinished rollout times out: spec.timeoutSeconds
// for the workloads plus the timeouts of the Jobs that run first, so a slow
// migration does not eat the time the workloads are given.
func deadline(cv *cvv1.ContainerVersion) time.Duration {
	total := rollout.Timeout(cv)
	for _, v := range cv.Spec.Container.Verify {
		total += jobTimeout(cv, v.TimeoutSeconds)
	}
	if cv.Spec.PreRollout != nil {
		for _, j := range cv.Spec.PreRollout.Jobs {
			total += jobTimeout(cv, j.TimeoutSeconds)
		}
	}
	return total
}

func jobTimeout(cv *cvv1.ContainerVersion, seconds int32) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return rollout.Timeout(cv)
}
