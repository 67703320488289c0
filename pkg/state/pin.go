package state

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/history"
)

// ReasonImported is the Progressing condition reason of an imported CV
// whose last-known-good version is being restored.
const ReasonImported = "Imported"

// createCV creates the CV from its exported spec, then pins it. A CV is
// created without status (the status subresource ignores it on create), so
// the pin is a second write.
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
	cvs := im.CVs.CvmanagerV1alpha1().ContainerVersions(s.Namespace)
	created, err := cvs.Create(ctx, cv, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		return nil, fmt.Errorf("creating ContainerVersion %s/%s: %w", s.Namespace, s.Name, err)
	}
	if !s.Pinned() {
		return created, nil
	}
	created.Status = Pin(s, im.now())
	pinned, err := cvs.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("pinning ContainerVersion %s/%s to %s: %w", s.Namespace, s.Name, s.SuccessVersion, err)
	}
	return pinned, nil
}

// Pin is the status an imported CV starts with. It records the
// last-known-good version as the success version (the rollback target and
// the downgrade baseline) and, unless the CV is suspended, as a rollout
// under way with trigger "import". The controller resumes a rollout found
// in status before it polls the registry (that is how it survives a
// restart), so the new cluster's workloads are first set to exactly the
// exported digest; only then does the CV follow its tag again.
//
// The rollout's timeout counts from now, so the controller should be
// running when the import happens (see docs/state.md).
func Pin(s CVState, now time.Time) cvv1.ContainerVersionStatus {
	t := metav1.NewTime(now)
	st := cvv1.ContainerVersionStatus{SuccessVersion: s.SuccessVersion, SuccessDigest: s.SuccessDigest}
	if s.Spec.Suspend {
		return st
	}
	st.CurrVersion, st.CurrDigest = s.SuccessVersion, s.SuccessDigest
	st.CurrStatus, st.CurrStatusTime = cvv1.StatusProgressing, &t
	st.Rollout = &cvv1.RolloutStatus{Version: s.SuccessVersion, Digest: s.SuccessDigest,
		Trigger: history.TriggerImport, StartTime: t}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: cvv1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: ReasonImported, LastTransitionTime: t,
		Message: fmt.Sprintf("restoring the last-known-good version %s (%s) from an exported state", s.SuccessVersion, s.SuccessDigest),
	})
	return st
}

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
