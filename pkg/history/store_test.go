package history

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// newCV builds a CV in namespace "ns" with a UID derived from its name.
func newCV(name string, edit ...func(*cvv1.ContainerVersion)) *cvv1.ContainerVersion {
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
	}}
	for _, e := range edit {
		e(cv)
	}
	return cv
}

func withHistory(name string, limit int32) func(*cvv1.ContainerVersion) {
	return func(cv *cvv1.ContainerVersion) {
		cv.Spec.History = cvv1.HistorySpec{Enabled: true, Name: name, Limit: limit}
	}
}

func TestConfigMapName(t *testing.T) {
	tests := []struct {
		name string
		cv   *cvv1.ContainerVersion
		want string
	}{
		{"CV name", newCV("web"), "web.history"},
		{"history name wins", newCV("web", withHistory("shared", 0)), "shared.history"},
		{"longest unshortened", newCV(strings.Repeat("a", 245)), strings.Repeat("a", 245) + ".history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ConfigMapName(tt.cv)); diff != "" {
				t.Errorf("ConfigMapName (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigMapNameLong: CV names up to 253 characters still give valid,
// distinct ConfigMap names.
func TestConfigMapNameLong(t *testing.T) {
	dnsSubdomain := regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	seen := map[string]string{}
	for _, cvName := range []string{
		strings.Repeat("a", 246), strings.Repeat("a", 253),
		strings.Repeat("a", 240) + "-b.c.d.e.f.g", strings.Repeat("a", 240) + "-b.c.d.e.f.h",
	} {
		got := ConfigMapName(newCV(cvName))
		if len(got) > 253 || !dnsSubdomain.MatchString(got) || !strings.HasSuffix(got, Suffix) {
			t.Errorf("ConfigMapName(%d chars) = %q (%d chars), not a valid name ending %s", len(cvName), got, len(got), Suffix)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("CVs %q and %q share history %q", other, cvName, got)
		}
		seen[got] = cvName
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name    string
		cv      *cvv1.ContainerVersion
		appends []Record
		want    []string
	}{
		{"first record creates", newCV("web"), []Record{rec("1", 1)}, []string{"1"}},
		{"newest first", newCV("web"), []Record{rec("1", 1), rec("2", 2), rec("3", 3)}, []string{"3", "2", "1"}},
		{"same ID twice kept once", newCV("web"), []Record{rec("1", 1), rec("1", 1), rec("2", 2), rec("1", 5)}, []string{"2", "1"}},
		{"limit from spec", newCV("web", withHistory("", 2)), []Record{rec("1", 1), rec("2", 2), rec("3", 3)}, []string{"3", "2"}},
		{"default limit", newCV("web"), manyRecords(DefaultLimit + 5), lastIDs(DefaultLimit+5, DefaultLimit)},
		{"missing ID derived from content", newCV("web"), []Record{rec("", 1), rec("", 1)}, []string{contentID(rec("", 1))}},
		{"older than limit keeps is dropped", newCV("web", withHistory("", 2)), []Record{rec("2", 2), rec("3", 3), rec("1", 1)}, []string{"3", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewStore(fake.NewClientset())
			for _, r := range tt.appends {
				if err := s.Append(ctx, tt.cv, r); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.List(ctx, tt.cv.Namespace, ConfigMapName(tt.cv))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func manyRecords(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = rec(strconv.Itoa(i), i)
	}
	return out
}

// lastIDs are the ids of the newest keep of manyRecords(n), newest first.
func lastIDs(n, keep int) []string {
	var out []string
	for i := n - 1; i >= n-keep; i-- {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func TestAppendMetadata(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := NewStore(client)
	cv := newCV("web")
	if err := s.Append(ctx, cv, rec("1", 1)); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("ns").Get(ctx, "web.history", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := metav1.ObjectMeta{
		Name: "web.history", Namespace: "ns",
		Labels:      map[string]string{LabelHistory: "true", LabelManagedBy: "cvmanager"},
		Annotations: map[string]string{AnnotationContainerVersion: "web"},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "cvmanager.dev/v1alpha1", Kind: "ContainerVersion", Name: "web", UID: "uid-web",
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}
	if diff := cmp.Diff(want, cm.ObjectMeta, cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields")); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
}

// TestAppendSharedHistory: a second CV writing the same history becomes a
// further owner, not a second controller (which the apiserver rejects).
func TestAppendSharedHistory(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := NewStore(client)
	for i, cv := range []*cvv1.ContainerVersion{newCV("a", withHistory("shared", 0)), newCV("b", withHistory("shared", 0))} {
		if err := s.Append(ctx, cv, rec(strconv.Itoa(i), i)); err != nil {
			t.Fatal(err)
		}
	}
	cm, err := client.CoreV1().ConfigMaps("ns").Get(ctx, "shared.history", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type owner struct {
		Name       string
		Controller bool
	}
	var got []owner
	for _, ref := range cm.OwnerReferences {
		got = append(got, owner{ref.Name, ptr.Deref(ref.Controller, false)})
	}
	if diff := cmp.Diff([]owner{{"a", true}, {"b", false}}, got); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
}

func TestAppendHugeReasonTruncated(t *testing.T) {
	ctx := context.Background()
	s := NewStore(fake.NewClientset())
	cv := newCV("web")
	huge := strings.Repeat("x", 1<<20)
	for i := range DefaultLimit + 10 {
		if err := s.Append(ctx, cv, rec(strconv.Itoa(i), i, withReason(huge))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "ns", "web.history")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DefaultLimit || got[0].ID != "59" || len(got[0].Reason) != MaxReasonBytes {
		t.Errorf("got %d records, newest %q with reason of %d bytes; want %d, \"59\", %d",
			len(got), got[0].ID, len(got[0].Reason), DefaultLimit, MaxReasonBytes)
	}
}

func TestAppendByteBudget(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := NewStore(client)
	s.budget = 40 << 10 // five records with full reasons
	cv := newCV("web")
	for i := range 10 {
		if err := s.Append(ctx, cv, rec(strconv.Itoa(i), i, withReason(strings.Repeat("x", 1<<20)))); err != nil {
			t.Fatal(err)
		}
	}
	cm, _ := client.CoreV1().ConfigMaps("ns").Get(ctx, "web.history", metav1.GetOptions{})
	got, err := Decode(cm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"9", "8", "7", "6"}, ids(got)); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if n := len(cm.Data[DataKey]) + otherBytes(cm); n > s.budget {
		t.Errorf("data is %d bytes, over budget %d", n, s.budget)
	}
}

func TestAppendTooLarge(t *testing.T) {
	s := NewStore(fake.NewClientset())
	s.budget = 100
	err := s.Append(context.Background(), newCV("web"), rec("1", 1))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append error = %v, want ErrTooLarge", err)
	}
}

// TestAppendCorrupt: an unreadable history is set aside, not fatal, because
// a retry could never fix it and the rollout records must keep flowing.
func TestAppendCorrupt(t *testing.T) {
	ctx := context.Background()
	broken := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web.history"},
		Data:       map[string]string{DataKey: `[{"id":`},
	}
	client := fake.NewClientset(broken)
	s := NewStore(client)
	if err := s.Append(ctx, newCV("web"), rec("1", 1)); err != nil {
		t.Fatal(err)
	}
	cm, _ := client.CoreV1().ConfigMaps("ns").Get(ctx, "web.history", metav1.GetOptions{})
	got, err := Decode(cm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1"}, ids(got)); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`[{"id":`, cm.Data[CorruptKey]); diff != "" {
		t.Errorf("set-aside value (-want +got):\n%s", diff)
	}
	if len(cm.OwnerReferences) != 1 || cm.Labels[LabelHistory] != "true" {
		t.Errorf("pre-existing ConfigMap not adopted: owners %v labels %v", cm.OwnerReferences, cm.Labels)
	}
}

// TestAppendRetries injects write races and checks Append re-reads and wins
// without losing the other writer's record.
func TestAppendRetries(t *testing.T) {
	tests := []struct {
		name string
		verb string
		err  func() error
	}{
		{"update conflict", "update", func() error {
			return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "web.history", errors.New("stale"))
		}},
		{"create race", "create", func() error {
			return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "configmaps"}, "web.history")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			client := fake.NewClientset()
			s := NewStore(client)
			cv := newCV("web")
			if tt.verb == "update" {
				if err := s.Append(ctx, cv, rec("0", 0)); err != nil {
					t.Fatal(err)
				}
			}
			failures := 3
			client.PrependReactor(tt.verb, "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
				if failures == 0 {
					return false, nil, nil
				}
				failures--
				return true, nil, tt.err()
			})
			if err := s.Append(ctx, cv, rec("1", 1)); err != nil {
				t.Fatal(err)
			}
			got, _ := s.List(ctx, "ns", "web.history")
			want := map[string][]string{"update": {"1", "0"}, "create": {"1"}}[tt.verb]
			if diff := cmp.Diff(want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAppendReadsTheCacheFirstAndAfreshAfterAConflict: the first read of
// an append asks the API server's cache (resourceVersion "0"); when that
// copy lagged and the write conflicts, the retry reads afresh (no
// resourceVersion), and no record is lost.
func TestAppendReadsTheCacheFirstAndAfreshAfterAConflict(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := NewStore(client)
	cv := newCV("web")
	if err := s.Append(ctx, cv, rec("0", 0)); err != nil {
		t.Fatal(err)
	}
	var reads []string
	client.PrependReactor("get", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reads = append(reads, a.(k8stesting.GetActionImpl).GetOptions.ResourceVersion)
		return false, nil, nil
	})
	conflicts := 1
	client.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "web.history", errors.New("stale"))
	})
	if err := s.Append(ctx, cv, rec("1", 1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0", ""}, reads); diff != "" {
		t.Errorf("resourceVersion of each read (-want +got):\n%s", diff)
	}
	got, _ := s.List(ctx, "ns", "web.history")
	if diff := cmp.Diff([]string{"1", "0"}, ids(got)); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

func TestAppendCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewStore(fake.NewClientset()).Append(ctx, newCV("web"), rec("1", 1))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Append error = %v, want context.Canceled", err)
	}
}

func TestListMissing(t *testing.T) {
	got, err := NewStore(fake.NewClientset()).List(context.Background(), "ns", "none.history")
	if err != nil || got != nil {
		t.Errorf("List = %v, %v; want nil, nil", got, err)
	}
}

// TestSetWriteBack: the writer's outcome lands in the records of its
// rollout only (the per-workload copies of one rollout share it), an
// unchanged outcome writes nothing, and a history without the rollout or
// without a ConfigMap is left alone.
func TestSetWriteBack(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s := NewStore(client)
	cv := newCV("web")
	pending := func(id, rollout string) Record {
		r := rec(id, len(id))
		r.WriteBack = &WriteBack{RolloutID: rollout, State: "Pending"}
		return r
	}
	for _, r := range []Record{rec("old", 1), pending("r1-a", "r1"), pending("r1-b", "r1"), pending("r2-a", "r2")} {
		if err := s.Append(ctx, cv, r); err != nil {
			t.Fatal(err)
		}
	}
	written := WriteBack{RolloutID: "r1", State: "Written", Commit: "9b1e0c"}
	if err := s.SetWriteBack(ctx, cv, ConfigMapName(cv), written); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, cv.Namespace, ConfigMapName(cv))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*WriteBack{"old": nil, "r1-a": &written, "r1-b": &written, "r2-a": {RolloutID: "r2", State: "Pending"}}
	have := map[string]*WriteBack{}
	for _, r := range got {
		have[r.ID] = r.WriteBack
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("write-backs by record (-want +got):\n%s", diff)
	}
	client.ClearActions()
	if err := s.SetWriteBack(ctx, cv, ConfigMapName(cv), written); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWriteBack(ctx, cv, "absent.history", written); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("an outcome already recorded, or a missing history, made a %s", a.GetVerb())
		}
	}
}
