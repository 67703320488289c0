package history

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSnapshotServesWhatListWouldHave: a snapshot of a namespace answers
// each history ConfigMap as Store.List does (records, nothing for a missing
// one, the error of an unreadable one), from one LIST and no GET; a
// ConfigMap without the history label, and another namespace, are not in it.
func TestSnapshotServesWhatListWouldHave(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	s := NewStore(kube)
	for _, name := range []string{"web", "api"} {
		if err := s.Append(ctx, newCV(name), rec(name+"-1", 1)); err != nil {
			t.Fatal(err)
		}
	}
	other := newCV("elsewhere")
	other.Namespace = "other"
	if err := s.Append(ctx, other, rec("x", 1)); err != nil {
		t.Fatal(err)
	}
	broken := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "broken.history",
		Labels: map[string]string{LabelHistory: "true"}}, Data: map[string]string{DataKey: "{not json"}}
	unlabelled := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "plain.history"},
		Data: map[string]string{DataKey: "[]"}}
	for _, cm := range []*corev1.ConfigMap{broken, unlabelled} {
		if _, err := kube.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kube.ClearActions()

	snap, err := s.Snapshot(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, a := range kube.Actions() {
		verbs = append(verbs, a.GetVerb())
	}
	if diff := cmp.Diff([]string{"list"}, verbs); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, name := range []string{"web.history", "api.history"} {
		want, err := s.List(ctx, "ns", name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := snap.Records(name)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %d records, err %v", name, len(got), err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s differs from List (-list +snapshot):\n%s", name, diff)
		}
	}
	if _, err := snap.Records("broken.history"); err == nil {
		t.Error("an unreadable history was served without its error")
	}
	for _, name := range []string{"plain.history", "elsewhere.history", "missing.history"} {
		if got, err := snap.Records(name); got != nil || err != nil {
			t.Errorf("%s: %v, %v; want nothing", name, got, err)
		}
	}
}
