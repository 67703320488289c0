package workload

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

func newIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
		LabelIndex: LabelPairKeys, cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// TestSelectThroughTheIndexMatchesAFullScan checks that Select returns what
// testing every object returns, for selectors that use LabelIndex and for
// those that fall back to the scan.
func TestSelectThroughTheIndexMatchesAFullScan(t *testing.T) {
	deployments := newIndexer()
	for _, d := range []*appsv1.Deployment{
		labelled("a", "web", map[string]string{"app": "web", "tier": "front"}),
		labelled("a", "web-canary", map[string]string{"app": "web", "tier": "canary"}),
		labelled("a", "db", map[string]string{"app": "db"}),
		labelled("a", "bare", nil),
		labelled("b", "web", map[string]string{"app": "web"}),
	} {
		if err := deployments.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	l := Listers{Deployments: deployments, StatefulSets: newIndexer(), DaemonSets: newIndexer(), CronJobs: newIndexer()}
	for _, tc := range []struct {
		name, ns, selector string
		want               []string
	}{
		{"one pair", "a", "app=web", []string{"a/web", "a/web-canary"}},
		{"two pairs", "a", "app=web,tier=front", []string{"a/web"}},
		{"in with one value", "a", "app in (db)", []string{"a/db"}},
		{"exists only falls back", "a", "tier", []string{"a/web", "a/web-canary"}},
		{"everything falls back", "a", "", []string{"a/bare", "a/db", "a/web", "a/web-canary"}},
		{"other namespace", "b", "app=web", []string{"b/web"}},
		{"no match", "a", "app=none", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := labels.Parse(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.Select(tc.ns, sel)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("Select(%q) (-want +got):\n%s", tc.selector, diff)
			}
			scanned := []string{}
			for _, o := range deployments.List() {
				if d := o.(*appsv1.Deployment); d.Namespace == tc.ns && sel.Matches(labels.Set(d.Labels)) {
					scanned = append(scanned, d.Namespace+"/"+d.Name)
				}
			}
			sort.Strings(scanned)
			if diff := cmp.Diff(scanned, names(got)); diff != "" {
				t.Errorf("Select and a full scan differ for %q (-scan +select):\n%s", tc.selector, diff)
			}
		})
	}
}

func labelled(ns, name string, lbls map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}}
}

// names lists workloads as namespace/name, in Select's order (by kind, then
// name, so sorted here: one kind).
func names(ws []Workload) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.Namespace()+"/"+w.Name())
	}
	return out
}
