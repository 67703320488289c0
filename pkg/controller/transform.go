package controller

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LastAppliedAnnotation is kubectl's copy of the whole object as last
// applied: as large as the object itself and read by no decision here.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// slimWorkload is the transform of the workload informers. Every
// Deployment, StatefulSet, DaemonSet and CronJob of the watched namespaces
// is cached, managed or not: a CV created or relabelled later must find its
// workloads (late joiners) at no API cost, and drift is seen from workload
// events. So the cache keeps what decisions read and drops the rest:
//   - metadata, without the last-applied annotation and with managedFields
//     reduced to who wrote and when (summarizeManagedFields);
//   - spec: replicas, selector, strategy and the pod template's labels,
//     service account, image pull secrets and containers' names and images
//     (what image checks, drift, blue-green labels, pull secrets and
//     authorization read);
//   - status, whole (small; rollout health and dashboard counts).
//
// Writes never start from a cached object (images are set by patches keyed
// by container name), so nothing dropped here can be written back.
func slimWorkload(obj any) (any, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		slimTemplate(&o.Spec.Template)
	case *appsv1.StatefulSet:
		slimTemplate(&o.Spec.Template)
		o.Spec.VolumeClaimTemplates = nil
	case *appsv1.DaemonSet:
		slimTemplate(&o.Spec.Template)
	case *batchv1.CronJob:
		slimTemplate(&o.Spec.JobTemplate.Spec.Template)
		o.Spec.JobTemplate.ObjectMeta = metav1.ObjectMeta{}
	}
	dropLastApplied(obj)
	return summarizeManagedFields(obj)
}

// slimTemplate keeps of a pod template what cvmanager reads.
func slimTemplate(t *corev1.PodTemplateSpec) {
	t.ObjectMeta = metav1.ObjectMeta{Labels: t.Labels}
	spec := t.Spec
	t.Spec = corev1.PodSpec{
		Containers:         nameAndImage(spec.Containers),
		InitContainers:     nameAndImage(spec.InitContainers),
		ServiceAccountName: spec.ServiceAccountName,
		ImagePullSecrets:   spec.ImagePullSecrets,
	}
}

func nameAndImage(cs []corev1.Container) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image}
	}
	return out
}

// slimMeta is the transform of the CV and Job informers: no managedFields
// and no last-applied annotation; the spec and status are read whole.
func slimMeta(obj any) (any, error) {
	dropLastApplied(obj)
	return stripManagedFields(obj)
}

func dropLastApplied(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[LastAppliedAnnotation]; ok {
			delete(a, LastAppliedAnnotation)
			m.SetAnnotations(a)
		}
	}
}

// summarizeManagedFields keeps of a workload's managedFields who wrote it
// and when (manager, operation, subresource, time), which names the other
// writer in a drift fight, and drops the field sets, often the largest part
// of an object.
func summarizeManagedFields(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	entries := m.GetManagedFields()
	for i := range entries {
		entries[i].FieldsV1 = nil
	}
	m.SetManagedFields(entries)
	return obj, nil
}

// stripManagedFields drops metadata.managedFields from cached objects: the
// controller never reads them from the cache and they are often the largest
// part of an object, which matters with thousands of workloads and CVs.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
