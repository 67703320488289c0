package controller

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
)

func deployment(ns, name string, lbls map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}}
}

func names(ds []*appsv1.Deployment) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Namespace+"/"+d.Name)
	}
	sort.Strings(out)
	return out
}

// TestIndexedListMatchesPlainList checks that the indexed namespaced List
// returns what the informer's plain List returns, for selectors that use
// the index and for those that fall back.
func TestIndexedListMatchesPlainList(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{labelIndex: labelPairKeys})
	for _, d := range []*appsv1.Deployment{
		deployment("a", "web", map[string]string{"app": "web", "tier": "front"}),
		deployment("a", "web-canary", map[string]string{"app": "web", "tier": "canary"}),
		deployment("a", "db", map[string]string{"app": "db"}),
		deployment("a", "bare", nil),
		deployment("b", "web", map[string]string{"app": "web"}),
	} {
		if err := indexer.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	plain := appslisters.NewDeploymentLister(indexer)
	indexed := deploymentLister{plain, indexer}
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
			got, err := indexed.Deployments(tc.ns).List(sel)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("indexed List(%q) (-want +got):\n%s", tc.selector, diff)
			}
			want, _ := plain.Deployments(tc.ns).List(sel)
			if diff := cmp.Diff(names(want), names(got)); diff != "" {
				t.Errorf("indexed and plain List(%q) differ (-plain +indexed):\n%s", tc.selector, diff)
			}
		})
	}
}
