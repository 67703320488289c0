package workload

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func deploymentOn(image string, replicas int32) Workload {
	sel := map[string]string{"app": "web"}
	return Workload{Kind: Deployment, Object: &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 2},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: replicas, UpdatedReplicas: replicas},
	}}
}

func stuckPod(ns, name, app, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}},
	}
}

// TestHealthListsPodsOnlyWhenTheyCanTell: pods are read from the apiserver
// (no cluster-wide cache), by the workload's selector in its namespace, and
// only once the template runs the image and replicas are wanted.
func TestHealthListsPodsOnlyWhenTheyCanTell(t *testing.T) {
	const image = "reg/web:v2"
	cron := Workload{Kind: CronJob, Object: &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}}}}}}
	tests := []struct {
		name       string
		w          Workload
		wantLists  []string
		wantReason string
	}{
		{"not yet patched", deploymentOn("reg/web:v1", 2), nil, ""},
		{"no replicas wanted", deploymentOn(image, 0), nil, ""},
		{"CronJob", cron, nil, ""},
		{"patched with replicas: the stuck pod of the image fails it", deploymentOn(image, 2), []string{"ns app=web"}, "ImagePullBackOff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(stuckPod("ns", "web-1", "web", image), stuckPod("ns", "other-1", "other", image),
				stuckPod("elsewhere", "web-1", "web", image))
			l := Listers{Pods: LivePods(client)}
			h, err := l.Health(context.Background(), tc.w, "app", image)
			if err != nil {
				t.Fatal(err)
			}
			var lists []string
			for _, a := range client.Actions() {
				if la, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "pods" {
					lists = append(lists, a.GetNamespace()+" "+la.GetListRestrictions().Labels.String())
				}
			}
			if diff := cmp.Diff(tc.wantLists, lists); diff != "" {
				t.Errorf("pod lists (-want +got):\n%s", diff)
			}
			if h.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q", h.Reason, tc.wantReason)
			}
		})
	}
}
