package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// fullMeta is metadata as the apiserver sends it, with the parts the cache
// drops (field sets, last-applied) and those it keeps.
func fullMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: "ns", Name: "web", Generation: 3, Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{LastAppliedAnnotation: `{"big":"copy"}`, "image.cvmanager.dev/app": "reg/web:v1"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}},
	}
}

// keptMeta is what the workload cache keeps of fullMeta.
func keptMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: "ns", Name: "web", Generation: 3, Labels: map[string]string{"app": "web"},
		Annotations:   map[string]string{"image.cvmanager.dev/app": "reg/web:v1"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1"}},
	}
}

// fullTemplate is a pod template with everything a real one carries.
func fullTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "color": "blue"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			Containers: []corev1.Container{{Name: "app", Image: "reg/web:v1",
				Env:            []corev1.EnvVar{{Name: "A", Value: "b"}},
				Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				ReadinessProbe: &corev1.Probe{InitialDelaySeconds: 3}}},
			InitContainers: []corev1.Container{{Name: "init", Image: "reg/init:v1", Command: []string{"sh"}}},
			Volumes:        []corev1.Volume{{Name: "data"}},
			Tolerations:    []corev1.Toleration{{Key: "k"}},
		},
	}
}

// keptTemplate is what the cache keeps of fullTemplate.
func keptTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "color": "blue"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			Containers:     []corev1.Container{{Name: "app", Image: "reg/web:v1"}},
			InitContainers: []corev1.Container{{Name: "init", Image: "reg/init:v1"}},
		},
	}
}

func TestSlimWorkloadKeepsWhatDecisionsRead(t *testing.T) {
	status := appsv1.DeploymentStatus{ObservedGeneration: 3, AvailableReplicas: 2}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tests := []struct {
		name     string
		in, want any
	}{{
		name: "Deployment",
		in: &appsv1.Deployment{ObjectMeta: fullMeta(), Status: status,
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector, Template: fullTemplate()}},
		want: &appsv1.Deployment{ObjectMeta: keptMeta(), Status: status,
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector, Template: keptTemplate()}},
	}, {
		name: "StatefulSet drops its volume claim templates",
		in: &appsv1.StatefulSet{ObjectMeta: fullMeta(), Spec: appsv1.StatefulSetSpec{Template: fullTemplate(),
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}}},
		want: &appsv1.StatefulSet{ObjectMeta: keptMeta(), Spec: appsv1.StatefulSetSpec{Template: keptTemplate(),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}},
	}, {
		name: "DaemonSet",
		in:   &appsv1.DaemonSet{ObjectMeta: fullMeta(), Spec: appsv1.DaemonSetSpec{Template: fullTemplate()}},
		want: &appsv1.DaemonSet{ObjectMeta: keptMeta(), Spec: appsv1.DaemonSetSpec{Template: keptTemplate()}},
	}, {
		name: "CronJob keeps its schedule",
		in: &batchv1.CronJob{ObjectMeta: fullMeta(), Spec: batchv1.CronJobSpec{Schedule: "@hourly",
			JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"x": "y"}},
				Spec: batchv1.JobSpec{Template: fullTemplate()}}}},
		want: &batchv1.CronJob{ObjectMeta: keptMeta(), Spec: batchv1.CronJobSpec{Schedule: "@hourly",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: keptTemplate()}}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := slimWorkload(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cached object (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlimMetaDropsOnlyMetadataNoiseFromCVsAndJobs(t *testing.T) {
	spec := cvv1.ContainerVersionSpec{ImageRepo: "reg/web", Tag: "env-prod"}
	in := &cvv1.ContainerVersion{ObjectMeta: fullMeta(), Spec: spec}
	want := &cvv1.ContainerVersion{ObjectMeta: fullMeta(), Spec: spec}
	want.ManagedFields = nil
	delete(want.Annotations, LastAppliedAnnotation)
	got, err := slimMeta(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cached CV (-want +got):\n%s", diff)
	}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{Template: fullTemplate()}}
	gotJob, _ := slimMeta(job.DeepCopy())
	if diff := cmp.Diff(job, gotJob); diff != "" {
		t.Errorf("a Job without managedFields or last-applied changed (-want +got):\n%s", diff)
	}
}
