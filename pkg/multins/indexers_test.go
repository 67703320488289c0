package multins

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"cvmanager.dev/cvmanager/pkg/workload"
)

// listersFor builds the listers of one namespace's informers, holding the
// given Deployments (all labelled app=web).
func listersFor(t *testing.T, ns string, names ...string) workload.Listers {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(fake.NewClientset(), 0, informers.WithNamespace(ns))
	l := workload.NewListers(f, nil)
	for _, n := range names {
		meta := metav1.ObjectMeta{Namespace: ns, Name: n, Labels: map[string]string{"app": "web"}}
		if err := l.Deployments.Add(&appsv1.Deployment{ObjectMeta: meta}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestCombinedListersReadEveryNamespaceAndOnlyTheOneAsked(t *testing.T) {
	a, b := listersFor(t, "a", "web", "web2"), listersFor(t, "b", "web")
	l := workload.Listers{
		Deployments:  indexers{a.Deployments, b.Deployments},
		StatefulSets: indexers{a.StatefulSets, b.StatefulSets},
		DaemonSets:   indexers{a.DaemonSets, b.DaemonSets},
		CronJobs:     indexers{a.CronJobs, b.CronJobs},
	}
	keys := func(ns string, sel labels.Selector) []string {
		ws, err := l.Select(ns, sel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.Namespace()+"/"+w.Key())
		}
		return out
	}
	web := labels.SelectorFromSet(labels.Set{"app": "web"})
	if diff := cmp.Diff([]string{"b/Deployment/web"}, keys("b", web)); diff != "" {
		t.Errorf("namespace b through the label index (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a/Deployment/web", "a/Deployment/web2"}, keys("a", labels.Everything())); diff != "" {
		t.Errorf("namespace a by listing (-want +got):\n%s", diff)
	}
	if got := len(l.Deployments.List()); got != 3 {
		t.Errorf("List: %d Deployments, want 3", got)
	}
	if _, ok, _ := l.Deployments.GetByKey("b/web"); !ok {
		t.Error("GetByKey b/web not found")
	}
	if err := l.Deployments.Add(&appsv1.Deployment{}); err == nil {
		t.Error("the combined indexer accepted a write")
	}
}
