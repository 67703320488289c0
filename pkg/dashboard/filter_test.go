package dashboard

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

func TestStateOf(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	blocked := metav1.Condition{Type: cvv1.ConditionReleaseBlocked, Status: metav1.ConditionTrue, Reason: "ManualRelease"}
	degraded := metav1.Condition{Type: cvv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "RolloutFailed", Message: "pods crash"}
	for _, tc := range []struct {
		name   string
		status cvv1.ContainerVersionStatus
		image  string
		want   Row
	}{
		{name: "progressing shows its step and start",
			status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusProgressing, Rollout: &cvv1.RolloutStatus{Step: "Migrated", StartTime: start}},
			want:   Row{State: StateProgressing, Step: "Migrated", RolloutStart: start.Time}},
		{name: "failed shows reason and message",
			status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusFailed, Conditions: []metav1.Condition{degraded}},
			want:   Row{State: StateFailed, Reason: "RolloutFailed", LastError: "pods crash"}},
		{name: "held shows the version and the release command",
			status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, AvailableVersion: "v2", AvailableDigest: "sha256:2", Conditions: []metav1.Condition{blocked}},
			want:   Row{State: StateHeld, AvailableVersion: "v2", ReleaseCommand: "cvmanager release -n shop --cv web --version v2"}},
		{name: "a released version no longer counts as held",
			status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, AvailableVersion: "v2", AvailableDigest: "sha256:2",
				Conditions: []metav1.Condition{{Type: cvv1.ConditionReleaseBlocked, Status: metav1.ConditionFalse}}},
			want: Row{State: StateSuccess}},
		{name: "drifted", image: "reg/web@sha256:other",
			status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, CurrDigest: "sha256:1"},
			want:   Row{State: StateDrifted, Drifted: true, Digest: "sha256:other", Image: "reg/web@sha256:other"}},
		{name: "never deployed", want: Row{State: StatePending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: cvv1.ContainerVersionSpec{Container: cvv1.ContainerSpec{Name: "app"}}, Status: tc.status}
			got := rowFor(cv, deployment("shop", "web", tc.image))
			got = Row{State: got.State, Step: got.Step, RolloutStart: got.RolloutStart, Reason: got.Reason, LastError: got.LastError,
				AvailableVersion: got.AvailableVersion, ReleaseCommand: got.ReleaseCommand, Drifted: got.Drifted, Digest: got.Digest, Image: got.Image}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReleaseCommandQuotesOddValues(t *testing.T) {
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Status: cvv1.ContainerVersionStatus{AvailableVersion: "v1; rm -rf '/'"}}
	want := `cvmanager release -n shop --cv web --version 'v1; rm -rf '\''/'\'''`
	if got := ReleaseCommand(cv); got != want {
		t.Errorf("ReleaseCommand = %s, want %s", got, want)
	}
}

func TestFilterApply(t *testing.T) {
	rows := []Row{
		{Namespace: "a", Name: "web", State: StateFailed, LastError: "ImagePullBackOff", AvailablePods: 1},
		{Namespace: "a", Name: "api", State: StateSuccess, AvailablePods: 3},
		{Namespace: "b", Name: "worker", State: StateProgressing, AvailablePods: 2},
		{Namespace: "b", Name: "webhook", State: StateSuccess, AvailablePods: 0},
	}
	names := func(rs []Row) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, tc := range []struct {
		query      string
		wantNames  []string
		wantCounts map[string]int
	}{
		{"", []string{"web", "api", "worker", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
		{"q=WEB", []string{"web", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 1}},
		{"q=imagepull", []string{"web"}, map[string]int{StateFailed: 1}},
		{"state=Success", []string{"api", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
		{"state=Nonsense", []string{"web", "api", "worker", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
		{"sort=name", []string{"api", "web", "webhook", "worker"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
		{"sort=pods&order=desc", []string{"api", "worker", "web", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
		{"sort=state", []string{"worker", "web", "api", "webhook"}, map[string]int{StateFailed: 1, StateSuccess: 2, StateProgressing: 1}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			kept, counts := ParseFilter(q).Apply(rows)
			if diff := cmp.Diff(tc.wantNames, names(kept)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantCounts, counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterQueryRoundTrips(t *testing.T) {
	for _, f := range []Filter{
		{},
		{Namespace: "shop", Text: "a b&c", State: StateHeld, Sort: "updated", Desc: true},
		{Sort: "name"},
	} {
		q, err := url.ParseQuery(f.Query())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(f, ParseFilter(q)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", f.Query(), diff)
		}
	}
	if got := (Filter{Sort: "name"}).SortedBy("name"); !got.Desc {
		t.Errorf("sorting twice by a column does not reverse it: %+v", got)
	}
}

// deployment is a one-container Deployment running image ("" = none).
func deployment(namespace, name, image string) workload.Workload {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}}}
	return workload.Workload{Kind: workload.Deployment, Object: d}
}
