// Package multins runs one controller per watched namespace and shows
// them to the HTTP handlers (dashboard, trigger, webhooks) as one.
//
// `cvmanager run --namespace a,b,c` is the namespaced install: RBAC grants
// the controller Roles in those namespaces only, so it cannot list or watch
// at cluster scope, and an informer per namespace is the only way to
// watch. A controller per namespace keeps pkg/controller unchanged: each
// has its own informers and queue, and all share the registry resolver
// (and so the shared poller's dedup) and the metrics.
package multins

import (
	"context"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Group is the controllers of a run, by namespace ("" for all namespaces).
type Group struct {
	byNS map[string]*controller.Controller
	nss  []string
}

// New makes one controller per namespace with newCtrl; an empty list
// means one controller for all namespaces.
func New(namespaces []string, newCtrl func(namespace string) *controller.Controller) *Group {
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	g := &Group{byNS: map[string]*controller.Controller{}}
	for _, ns := range namespaces {
		if _, dup := g.byNS[ns]; dup {
			continue
		}
		g.byNS[ns] = newCtrl(ns)
		g.nss = append(g.nss, ns)
	}
	sort.Strings(g.nss)
	return g
}

// Controllers are the group's controllers in namespace order.
func (g *Group) Controllers() []*controller.Controller {
	out := make([]*controller.Controller, 0, len(g.nss))
	for _, ns := range g.nss {
		out = append(out, g.byNS[ns])
	}
	return out
}

// owner is the controller that watches namespace, if any.
func (g *Group) owner(namespace string) (*controller.Controller, bool) {
	if c, ok := g.byNS[""]; ok {
		return c, true
	}
	c, ok := g.byNS[namespace]
	return c, ok
}

// Run runs every controller until ctx ends or one fails.
func (g *Group) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, c := range g.Controllers() {
		eg.Go(func() error { return c.Run(ctx) })
	}
	return eg.Wait()
}

// HasSynced reports whether every controller's caches are filled.
func (g *Group) HasSynced() bool {
	for _, c := range g.byNS {
		if !c.HasSynced() {
			return false
		}
	}
	return true
}

// KubeClient is the client the controllers share.
func (g *Group) KubeClient() kubernetes.Interface { return g.Controllers()[0].KubeClient() }

// TriggerPoll asks the namespace's controller for an immediate poll; a
// namespace not watched has no CV to poll.
func (g *Group) TriggerPoll(namespace, name, trigger string) {
	if c, ok := g.owner(namespace); ok {
		c.TriggerPoll(namespace, name, trigger)
	}
}

// ClearFailed forgets a CV's failed version through its controller.
func (g *Group) ClearFailed(ctx context.Context, namespace, name string) error {
	c, ok := g.owner(namespace)
	if !ok {
		return fmt.Errorf("namespace %s is not watched by this controller", namespace)
	}
	return c.ClearFailed(ctx, namespace, name)
}

// CVLister reads the CVs of every watched namespace.
func (g *Group) CVLister() cvlisters.ContainerVersionLister {
	if len(g.nss) == 1 {
		return g.byNS[g.nss[0]].CVLister()
	}
	return cvLister{g}
}

// WorkloadListers read the workloads and pods of every watched namespace.
func (g *Group) WorkloadListers() workload.Listers {
	if len(g.nss) == 1 {
		return g.byNS[g.nss[0]].WorkloadListers()
	}
	var deps, sts, dss, cjs indexers
	pods := podLister{}
	for _, c := range g.Controllers() {
		l := c.WorkloadListers()
		deps, sts, dss, cjs = append(deps, l.Deployments), append(sts, l.StatefulSets), append(dss, l.DaemonSets), append(cjs, l.CronJobs)
		pods = append(pods, l.Pods)
	}
	return workload.Listers{Deployments: deps, StatefulSets: sts, DaemonSets: dss, CronJobs: cjs, Pods: pods}
}

type cvLister struct{ g *Group }

func (l cvLister) List(sel labels.Selector) ([]*cvv1.ContainerVersion, error) {
	var out []*cvv1.ContainerVersion
	for _, c := range l.g.Controllers() {
		cvs, err := c.CVLister().List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, cvs...)
	}
	return out, nil
}

func (l cvLister) ContainerVersions(namespace string) cvlisters.ContainerVersionNamespaceLister {
	if c, ok := l.g.owner(namespace); ok {
		return c.CVLister().ContainerVersions(namespace)
	}
	return cvlisters.NewContainerVersionLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})).ContainerVersions(namespace)
}

type podLister []corelisters.PodLister

func (p podLister) List(sel labels.Selector) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, l := range p {
		pods, err := l.List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

// Pods asks every member: each holds only its own namespace's pods.
func (p podLister) Pods(namespace string) corelisters.PodNamespaceLister {
	return podNamespaceLister{p, namespace}
}

type podNamespaceLister struct {
	p  podLister
	ns string
}

func (n podNamespaceLister) List(sel labels.Selector) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, l := range n.p {
		pods, err := l.Pods(n.ns).List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

func (n podNamespaceLister) Get(name string) (*corev1.Pod, error) {
	var last error
	for _, l := range n.p {
		pod, err := l.Pods(n.ns).Get(name)
		if err == nil {
			return pod, nil
		}
		last = err
	}
	return nil, last
}
