package state

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/history"
)

// createCV creates the CV from its exported spec. A CV with a
// last-known-good version carries it in the import mark
// (cvv1.AnnotationImported): the controller, which alone writes status,
// restores that version first, then follows the tag.
func (im *Importer) createCV(ctx context.Context, s CVState) (*cvv1.ContainerVersion, error) {
	cv := &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name,
			Labels: maps.Clone(s.Labels), Annotations: maps.Clone(s.Annotations)},
		Spec: *s.Spec.DeepCopy(),
	}
	if im.Author.User != "" {
		// The recorded author is an identity of the exporting cluster; the
		// importer vouches for the CV here (the admission policy insists).
		authz.Stamp(cv, im.Author)
	}
	if s.Pinned() {
		if cv.Annotations == nil {
			cv.Annotations = map[string]string{}
		}
		cv.Annotations[cvv1.AnnotationImported] = ImportMark(s)
	}
	created, err := im.CVs.CvmanagerV1alpha1().ContainerVersions(s.Namespace).Create(ctx, cv, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		return nil, fmt.Errorf("creating ContainerVersion %s/%s: %w", s.Namespace, s.Name, err)
	}
	return created, nil
}

// ImportMark is the value of the import mark for s: "<version>@<digest>".
func ImportMark(s CVState) string { return s.SuccessVersion + "@" + s.SuccessDigest }

// restoreHistory recreates the history ConfigMap, owned by the new CV. An
// existing one keeps its records and gains the exported ones it lacks.
func restoreHistory(ctx context.Context, kube kubernetes.Interface, cv *cvv1.ContainerVersion, s CVState) error {
	if len(s.History) == 0 {
		return nil
	}
	name := history.ConfigMapName(cv)
	data, err := history.Encode(s.History)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: cv.Namespace, Name: name,
			Labels:          map[string]string{history.LabelHistory: "true", history.LabelManagedBy: "cvmanager"},
			Annotations:     map[string]string{history.AnnotationContainerVersion: cv.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cv, cvv1.SchemeGroupVersion.WithKind("ContainerVersion"))},
		},
		Data: data,
	}
	_, err = kube.CoreV1().ConfigMaps(cv.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return mergeHistory(ctx, kube, cv, s.History)
	}
	if err != nil {
		return fmt.Errorf("restoring history %s/%s: %w", cv.Namespace, name, err)
	}
	return nil
}

// mergeHistory appends, oldest first, the exported records an existing
// history lacks; Append skips the IDs already there.
func mergeHistory(ctx context.Context, kube kubernetes.Interface, cv *cvv1.ContainerVersion, records []history.Record) error {
	store := history.NewStore(kube)
	for i := len(records) - 1; i >= 0; i-- {
		if err := store.Append(ctx, cv, records[i]); err != nil {
			return err
		}
	}
	return nil
}

// claim makes this cluster the owner of its state path: NewPath gets a
// copy of the imported objects and a manifest naming this cluster; without
// NewPath the source's manifest is rewritten to name this cluster, so the
// old cluster's exporter, should it come back, refuses to overwrite it.
func (im *Importer) claim(ctx context.Context, src *Manifest, states []CVState, workloads []Workload) error {
	now := im.now()
	owner := Owner{ClusterID: im.ClusterID, Identity: im.Identity, Heartbeat: now, ClaimedBy: ClaimImport}
	if im.NewPath == nil {
		m := *src
		m.Owner = owner
		return writeManifest(ctx, im.Source, &m)
	}
	refs, _, err := writeObjects(ctx, im.NewPath, im.Concurrency, asObjects(states), nil)
	if err != nil {
		return err
	}
	wrefs, _, err := writeObjects(ctx, im.NewPath, im.Concurrency, asObjects(workloads), nil)
	if err != nil {
		return err
	}
	m := &Manifest{SchemaVersion: SchemaVersion, ClusterID: im.ClusterID, Owner: owner, Time: now, Objects: refs, Workloads: wrefs}
	return writeManifest(ctx, im.NewPath, m)
}
