package state

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

func TestCleanService(t *testing.T) {
	userSet := metav1.ManagedFieldsEntry{Manager: "kubectl", FieldsV1: &metav1.FieldsV1{
		Raw: []byte(`{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{"f:nodePort":{}}}}}`)}}
	tests := []struct {
		name    string
		managed []metav1.ManagedFieldsEntry
		want    map[string]any
	}{
		{"allocated nodePort dropped", nil, map[string]any{"port": float64(80), "protocol": "TCP", "targetPort": float64(80)}},
		{"user's nodePort kept", []metav1.ManagedFieldsEntry{userSet},
			map[string]any{"port": float64(80), "protocol": "TCP", "targetPort": float64(80), "nodePort": float64(30080)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u1", ResourceVersion: "7", ManagedFields: tt.managed,
					Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.9", ClusterIPs: []string{"10.0.0.9"},
					Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080, TargetPort: intstr.FromInt32(80)}}},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
			}
			got, err := cleanService(svc)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"apiVersion": "v1", "kind": "Service",
				"metadata": map[string]any{"namespace": "shop", "name": "web"},
				"spec":     map[string]any{"type": "NodePort", "ports": []any{tt.want}},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cleaned Service (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCollectWorkloads: the CVs' selectors pick the workloads (an
// unselected one stays behind), blue-green Services come along (a missing
// one is no error), and no cluster-set field survives.
func TestCollectWorkloads(t *testing.T) {
	dep := func(name, app string) runtime.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": app},
			UID: types.UID("uid-" + name), Generation: 3, Annotations: map[string]string{"deployment.kubernetes.io/revision": "4"}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2}}
	}
	kube := fake.NewClientset(dep("web", "web"), dep("other", "other"),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "live"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1"}})
	states := []CVState{
		{Namespace: "ns", Name: "web", Spec: cvv1.ContainerVersionSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		{Namespace: "ns", Name: "bg", Spec: cvv1.ContainerVersionSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bg"}},
			Strategy: cvv1.StrategySpec{BlueGreen: &cvv1.BlueGreenSpec{ServiceName: "live", VerificationServiceName: "gone"}}}},
	}
	got, err := CollectWorkloads(context.Background(), kube, states)
	if err != nil {
		t.Fatal(err)
	}
	want := []Workload{
		{Kind: KindDeployment, Namespace: "ns", Name: "web", Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"namespace": "ns", "name": "web", "labels": map[string]any{"app": "web"}},
			"spec":     map[string]any{"selector": nil, "template": map[string]any{"metadata": map[string]any{}, "spec": map[string]any{"containers": nil}}, "strategy": map[string]any{}}}},
		{Kind: KindService, Namespace: "ns", Name: "live", Object: map[string]any{"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"namespace": "ns", "name": "live"}, "spec": map[string]any{}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("collected workloads (-want +got):\n%s", diff)
	}
}

// TestImportWorkloadIdempotent: the first import creates, the second skips
// as identical, and a changed live object is reported and left alone.
func TestImportWorkloadIdempotent(t *testing.T) {
	kube := fake.NewClientset()
	src := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"app": "web"}}}
	obj, err := cleanDeployment(src)
	if err != nil {
		t.Fatal(err)
	}
	im := &Importer{Kube: kube}
	w := Workload{Kind: KindDeployment, Namespace: "ns", Name: "web", Object: obj}
	ctx := context.Background()
	var got []WorkloadItem
	got = append(got, im.importWorkload(ctx, w), im.importWorkload(ctx, w))
	live, err := kube.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Labels["team"] = "b"
	if _, err := kube.AppsV1().Deployments("ns").Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got = append(got, im.importWorkload(ctx, w), im.importWorkload(ctx, Workload{Kind: "Pod", Namespace: "ns", Name: "p"}))
	item := func(kind, name, action, detail string) WorkloadItem {
		return WorkloadItem{Kind: kind, Namespace: "ns", Name: name, Action: action, Detail: detail}
	}
	want := []WorkloadItem{
		item(KindDeployment, "web", ImportCreated, ""),
		item(KindDeployment, "web", ImportSkipped, "exists, identical"),
		item(KindDeployment, "web", ImportSkipped, "exists, differs from the export in metadata.labels.team: left unchanged"),
		item("Pod", "p", ImportFailed, "kind Pod is not one cvmanager exports"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("import outcomes (-want +got):\n%s", diff)
	}
}
