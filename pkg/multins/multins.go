// Package multins runs one controller per watched namespace and shows
// their caches to the HTTP handlers (dashboard, trigger, webhooks) as one.
//
// `cvmanager run --namespace a,b,c` is the namespaced install: RBAC grants
// the controller Roles in those namespaces only, so it cannot list or watch
// at cluster scope, and an informer per namespace is the only way to
// watch. A controller per namespace keeps pkg/controller unchanged: each
// has its own informers and queue, and all share the registry resolver
// (and so the shared poller's dedup) and the metrics. Triggers pass through
// the group only on the leader, which takes them in memory (Accept); a
// standby records them as request objects (controller.Requests), and the
// namespace's controller on the leader picks them up.
package multins

import (
	"context"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Member is one namespace's controller and the informer factories it
// reads; the factories also serve the HTTP reads of every replica.
type Member struct {
	Controller *controller.Controller
	Factories  *controller.Factories
}

// Group is the controllers of a run, by namespace ("" for all namespaces).
type Group struct {
	byNS map[string]Member
	nss  []string
}

// New makes one member per namespace with newMember; an empty list means
// one member for all namespaces.
func New(namespaces []string, newMember func(namespace string) Member) *Group {
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	g := &Group{byNS: map[string]Member{}}
	for _, ns := range namespaces {
		if _, dup := g.byNS[ns]; dup {
			continue
		}
		g.byNS[ns] = newMember(ns)
		g.nss = append(g.nss, ns)
	}
	sort.Strings(g.nss)
	return g
}

// members are the group's members in namespace order.
func (g *Group) members() []Member {
	out := make([]Member, 0, len(g.nss))
	for _, ns := range g.nss {
		out = append(out, g.byNS[ns])
	}
	return out
}

// owner is the member that watches namespace, if any.
func (g *Group) owner(namespace string) (Member, bool) {
	if m, ok := g.byNS[""]; ok {
		return m, true
	}
	m, ok := g.byNS[namespace]
	return m, ok
}

// Run runs every controller until ctx ends or one fails.
func (g *Group) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, m := range g.members() {
		eg.Go(func() error { return m.Controller.Run(ctx) })
	}
	return eg.Wait()
}

// Start starts every member's informers; every replica does, leader or not.
func (g *Group) Start(stop <-chan struct{}) {
	for _, m := range g.members() {
		m.Factories.Start(stop)
	}
}

// Shutdown stops every member's informers.
func (g *Group) Shutdown() {
	for _, m := range g.members() {
		m.Factories.Shutdown()
	}
}

// HasSynced reports whether every controller's caches are filled.
func (g *Group) HasSynced() bool {
	for _, m := range g.byNS {
		if !m.Controller.HasSynced() {
			return false
		}
	}
	return true
}

// UpdateSettings hands new controller-wide settings to every controller.
func (g *Group) UpdateSettings(s controller.Settings) {
	for _, m := range g.byNS {
		m.Controller.UpdateSettings(s)
	}
}

func cvListerOf(m Member) cvlisters.ContainerVersionLister {
	return m.Factories.Informers().CVs.Lister()
}

// ReportWriteBack routes a git writer's outcome for the CV key
// ("namespace/name") to the controller watching its namespace.
func (g *Group) ReportWriteBack(key string, st cvv1.WriteBackStatus) {
	namespace, _, _ := strings.Cut(key, "/")
	if m, ok := g.owner(namespace); ok {
		m.Controller.ReportWriteBack(key, st)
	}
}

// Accept hands a request to the controller watching namespace when this
// process leads (controller.Controller.Accept).
func (g *Group) Accept(namespace, name, action, trigger, digest string) bool {
	m, ok := g.owner(namespace)
	return ok && m.Controller.Accept(namespace, name, action, trigger, digest)
}

// SetLeading tells every controller how to know whether this process leads.
func (g *Group) SetLeading(leading func() bool) {
	for _, m := range g.members() {
		m.Controller.SetLeading(leading)
	}
}

// CVLister reads the CVs of every watched namespace.
func (g *Group) CVLister() cvlisters.ContainerVersionLister {
	if len(g.nss) == 1 {
		return cvListerOf(g.byNS[g.nss[0]])
	}
	return cvLister{g}
}

// WorkloadListers read the workloads of every watched namespace. Pods are
// listed from the apiserver in the workload's own namespace, which every
// member may do, so one member's pod lister serves all.
func (g *Group) WorkloadListers() workload.Listers {
	if len(g.nss) == 1 {
		return g.byNS[g.nss[0]].Factories.WorkloadListers()
	}
	var deps, sts, dss, cjs indexers
	var pods workload.PodLister
	for _, m := range g.members() {
		l := m.Factories.WorkloadListers()
		deps, sts, dss, cjs = append(deps, l.Deployments), append(sts, l.StatefulSets), append(dss, l.DaemonSets), append(cjs, l.CronJobs)
		pods = l.Pods
	}
	return workload.Listers{Deployments: deps, StatefulSets: sts, DaemonSets: dss, CronJobs: cjs, Pods: pods}
}

type cvLister struct{ g *Group }

func (l cvLister) List(sel labels.Selector) ([]*cvv1.ContainerVersion, error) {
	var out []*cvv1.ContainerVersion
	for _, m := range l.g.members() {
		cvs, err := cvListerOf(m).List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, cvs...)
	}
	return out, nil
}

func (l cvLister) ContainerVersions(namespace string) cvlisters.ContainerVersionNamespaceLister {
	if m, ok := l.g.owner(namespace); ok {
		return cvListerOf(m).ContainerVersions(namespace)
	}
	return cvlisters.NewContainerVersionLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})).ContainerVersions(namespace)
}
