package dashboard

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// TestHistoriesOfANamespaceAreOneList: the histories behind the delivery
// view and the DORA series cost one LIST per namespace, not a GET per
// ConfigMap name; where listing is forbidden they are read by name, with
// the same result.
func TestHistoriesOfANamespaceAreOneList(t *testing.T) {
	var cvs []*cvv1.ContainerVersion
	var workloads []workload.Workload
	for _, ns := range []string{"shop", "blog"} {
		for _, name := range []string{"web", "api", "db"} {
			cvs = append(cvs, &cvv1.ContainerVersion{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name)},
				Spec:       cvv1.ContainerVersionSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Container: cvv1.ContainerSpec{Name: "app"}}})
			workloads = append(workloads, deployment(ns, name, "r/"+name+":1"))
		}
	}
	src := fakeSource{cvs: cvs, workloads: workloads}
	kube := fake.NewClientset()
	store := history.NewStore(kube)
	ctx := context.Background()
	for _, cv := range cvs[:4] { // db of blog, api of blog: one with history, one without
		rec := history.Record{Time: now, Workload: "Deployment/" + cv.Name, CV: cv.Name, Outcome: history.OutcomeSuccess, ToVersion: "v2"}
		if err := store.Append(ctx, cv, rec); err != nil {
			t.Fatal(err)
		}
	}

	kube.ClearActions()
	listed, err := readHistories(ctx, src, store, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"list configmaps shop", "list configmaps blog"}, requests(kube)); diff != "" {
		t.Errorf("requests for 6 CVs in 2 namespaces (-want +got):\n%s", diff)
	}
	if n := recordCount(listed); n != 4 {
		t.Errorf("%d records read, want 4", n)
	}

	kube.ClearActions()
	kube.PrependReactor("list", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", nil)
	})
	byName, err := readHistories(ctx, src, store, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(listed, byName); diff != "" {
		t.Errorf("read by name differs from listed (-listed +by name):\n%s", diff)
	}
	gets := 0
	for _, r := range requests(kube) {
		if r[:3] == "get" {
			gets++
		}
	}
	if gets < len(cvs) {
		t.Errorf("with list forbidden, %d GETs for %d CVs: the histories were not read by name", gets, len(cvs))
	}
}

func requests(kube *fake.Clientset) []string {
	var out []string
	for _, a := range kube.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace())
	}
	return out
}

func recordCount(cvs []cvRecords) int {
	n := 0
	for _, cv := range cvs {
		n += len(cv.Records)
	}
	return n
}
