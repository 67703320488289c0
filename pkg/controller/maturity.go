package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/maturity"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// holdYoung applies spec.policy.minAge to a new digest (pkg/maturity): a
// digest younger than minAge, by its build time (provenance, read once per
// digest) or else its first sighting, is held until it is old enough, and
// the plan looks at the CV again then. An explicit release skips the wait. It
// reports whether the digest is held.
func (c *Controller) holdYoung(cv *cvv1.ContainerVersion, o *pollObservation) bool {
	if released(cv, o.version, o.img.Digest) {
		return false
	}
	var created string
	info, known := c.opts.Provenance.Lookup(o.img.Digest)
	if known {
		created = info.Created
	}
	now := c.clock.Now()
	v := maturity.Check(cv, o.img.Digest, created, known, now)
	if v.Allowed {
		return false
	}
	o.verdict = policy.Verdict{Reason: v.Reason, Message: v.Message}
	until := v.Until
	o.heldUntil = &until // hold() records it and looks again then
	return true
}

// checkPlatforms is the platform gate (pkg/platform): an image index must
// hold a manifest for every OS and architecture of the nodes the selected
// workloads can schedule to. The index is read once per digest, in the
// background; the CV is woken when it is known. It reports whether the
// digest may not start now (refused, or still pending).
func (c *Controller) checkPlatforms(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, o *pollObservation) bool {
	if c.opts.Platforms == nil || c.nodes == nil {
		return false
	}
	nodes := c.nodePlatforms(workloads)
	idx, known := c.opts.Platforms.Lookup(o.img.Digest)
	if !known && len(nodes) > 0 {
		repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: registry.Auth{PullSecrets: c.pullSecrets(ctx, cv, workloads)}}
		key := namespacedKey(cv)
		c.opts.Platforms.Request(ctx, repo, o.img.Digest, func() { c.queue.Add(key) })
	}
	g := platform.Gate(idx, known, nodes)
	if known && idx.Err != nil {
		// A failed read refuses this poll only: the next one reads again,
		// so a registry hiccup does not hold the digest until restart.
		c.opts.Platforms.Forget(o.img.Digest)
	}
	switch {
	case g.Pending:
		o.pending = true
		return true
	case !g.Allowed:
		o.verdict = policy.Verdict{Reason: g.Reason, Message: g.Message}
		return true
	}
	return false
}

// nodePlatforms are the platforms of the nodes the CV's selected
// workloads can schedule to, from the node cache.
func (c *Controller) nodePlatforms(workloads []workload.Workload) []platform.Platform {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil || len(nodes) == 0 {
		return nil
	}
	var out []platform.Platform
	for _, w := range workloads {
		out = append(out, platform.NodePlatforms(&w.PodTemplate().Spec, nodes)...)
	}
	return out
}

// slimNode keeps what the platform gate reads of a Node: its labels
// (os, arch, and what selectors match) and taints. The rest, the image
// list above all, is large and read by nobody here.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, ResourceVersion: n.ResourceVersion, UID: n.UID},
		Spec:       corev1.NodeSpec{Taints: n.Spec.Taints},
	}, nil
}

// nodeLister is what the platform gate reads nodes from.
type nodeLister = corelisters.NodeLister
