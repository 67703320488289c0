package history

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Labels and annotations on history ConfigMaps, so the dashboard can find
// every history with one label selector and tell which CV wrote it.
const (
	LabelHistory               = "cvmanager.dev/history"
	LabelManagedBy             = "app.kubernetes.io/managed-by"
	AnnotationContainerVersion = "cvmanager.dev/container-version"
	// Selector lists history ConfigMaps: metav1.ListOptions{LabelSelector: Selector}.
	Selector = LabelHistory + "=true"
)

// DefaultLimit is the record count kept when spec.history.limit is unset.
const DefaultLimit = 50

// DefaultByteBudget bounds the ConfigMap's data, leaving room under the
// 1 MiB object limit for metadata and managed fields.
const DefaultByteBudget = 900 << 10

// CorruptKey keeps (up to maxCorruptBytes of) an unreadable records value
// that Append replaced, so a broken history is set aside for a person to
// inspect instead of blocking every later rollout record or vanishing.
const CorruptKey = DataKey + ".unreadable"

const maxCorruptBytes = 64 << 10

// conflictBackoff is generous because writers of one history contend: with
// N concurrent writers the last may lose N-1 races before it wins.
var conflictBackoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Steps: 25, Cap: time.Second}

// Store reads and writes history ConfigMaps through the Kubernetes API. It
// holds no state of its own, so any number of Stores (or replicas) may write
// the same history.
type Store struct {
	client  kubernetes.Interface
	budget  int
	backoff wait.Backoff
}

// NewStore returns a Store using client, which needs get, create and update
// on ConfigMaps in the CVs' namespaces.
func NewStore(client kubernetes.Interface) *Store {
	return &Store{client: client, budget: DefaultByteBudget, backoff: conflictBackoff}
}

// Append records rec in cv's history, creating the ConfigMap on first use.
// It keeps the history newest first and within its count and byte bounds,
// does nothing when rec.ID is already recorded, and retries on conflicting
// writes, re-reading each time, so no concurrent record is lost. It does not
// look at spec.history.enabled: deciding whether to record is the caller's.
func (s *Store) Append(ctx context.Context, cv *cvv1.ContainerVersion, rec Record) error {
	return s.AppendTo(ctx, cv, ConfigMapName(cv), rec)
}

// AppendTo is Append to the history ConfigMap name in cv's namespace, e.g.
// a workload's history (WorkloadConfigMapName). The ConfigMap is owned by
// cv like the CV's own history.
func (s *Store) AppendTo(ctx context.Context, cv *cvv1.ContainerVersion, name string, rec Record) error {
	rec = normalize(rec)
	done := false
	read := metav1.GetOptions{ResourceVersion: "0"} // the first try reads the API server's cache
	err := retry.OnError(s.backoff, retriable, func() error {
		err := s.appendOnce(ctx, cv, name, rec, read)
		done = err == nil
		read = metav1.GetOptions{} // a retry reads afresh
		return err
	})
	if err == nil && !done {
		// retry.OnError reports a context error as its last retriable
		// error, which is nil when the first attempt was canceled.
		err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("appending to history %s/%s: %w", cv.Namespace, name, err)
	}
	return nil
}

// appendOnce is one read-modify-write of the history. The first try reads
// from the API server's watch cache (resourceVersion "0"), which spares
// etcd a read per rollout; a read that lags the history is safe, since the
// write carries its resourceVersion (or is a create) and a conflict
// retries from a fresh read.
func (s *Store) appendOnce(ctx context.Context, cv *cvv1.ContainerVersion, name string, rec Record, read metav1.GetOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cms := s.client.CoreV1().ConfigMaps(cv.Namespace)
	cm, err := cms.Get(ctx, name, read)
	if apierrors.IsNotFound(err) {
		return s.create(ctx, cv, name, rec)
	}
	if err != nil {
		return err
	}
	changed, err := s.add(cm, cv, rec)
	if err != nil || !changed {
		return err
	}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// retriable is true for the errors a fresh read fixes: a stale
// resourceVersion, or losing the race to create the ConfigMap.
func retriable(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// List returns the records of a history ConfigMap, newest first; a missing
// ConfigMap is an empty history, since nothing has been rolled out yet.
func (s *Store) List(ctx context.Context, namespace, configMapName string) ([]Record, error) {
	cm, err := s.client.CoreV1().ConfigMaps(namespace).Get(ctx, configMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return Decode(cm)
}

// create makes the history ConfigMap holding rec, owned by cv.
func (s *Store) create(ctx context.Context, cv *cvv1.ContainerVersion, name string, rec Record) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cv.Namespace}}
	ensureMetadata(cm, cv)
	if _, err := s.add(cm, cv, rec); err != nil {
		return err
	}
	_, err := s.client.CoreV1().ConfigMaps(cv.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	return err
}

// add merges rec into cm in memory and reports whether cm needs writing.
func (s *Store) add(cm *corev1.ConfigMap, cv *cvv1.ContainerVersion, rec Record) (bool, error) {
	changed := ensureMetadata(cm, cv)
	records, err := Decode(cm)
	if err != nil {
		cm.Data[CorruptKey] = truncate(cm.Data[DataKey], maxCorruptBytes)
		records, changed = nil, true
	}
	if contains(records, rec.ID) {
		return changed, nil
	}
	data, kept, err := encodeBounded(merge(records, rec), limitOf(cv), s.budget-otherBytes(cm))
	if err != nil {
		return false, err
	}
	if kept == 0 {
		return false, fmt.Errorf("%w: record %q does not fit in %d bytes", ErrTooLarge, rec.ID, s.budget-otherBytes(cm))
	}
	if cm.Data[DataKey] == data {
		return changed, nil // rec was older than all the limit keeps
	}
	cm.Data[DataKey] = data
	return true, nil
}

// merge puts rec into records, newest first. Sorting by time (rather than
// just prepending) keeps the order right when replicas' clocks or a
// restarted controller write records late; among equal times the new one
// comes first.
func merge(records []Record, rec Record) []Record {
	out := make([]Record, 0, len(records)+1)
	out = append(out, rec)
	out = append(out, records...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

func contains(records []Record, id string) bool {
	for _, r := range records {
		if r.ID == id {
			return true
		}
	}
	return false
}

// limitOf is spec.history.limit, or DefaultLimit when unset.
func limitOf(cv *cvv1.ContainerVersion) int {
	if cv.Spec.History.Limit > 0 {
		return int(cv.Spec.History.Limit)
	}
	return DefaultLimit
}

// otherBytes is what the ConfigMap holds besides the records, which the
// records' budget must leave room for.
func otherBytes(cm *corev1.ConfigMap) int {
	n := 0
	for k, v := range cm.Data {
		if k != DataKey {
			n += len(k) + len(v)
		}
	}
	for k, v := range cm.BinaryData {
		n += len(k) + len(v)
	}
	for k, v := range cm.Annotations {
		n += len(k) + len(v)
	}
	return n
}

// ensureMetadata adds the label, annotation and owner reference a history
// ConfigMap needs, and reports whether it changed anything. A ConfigMap
// already controlled by another CV (a shared history name) gets cv as a
// further owner, so it is collected only when every owner is gone.
func ensureMetadata(cm *corev1.ConfigMap, cv *cvv1.ContainerVersion) bool {
	changed := false
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if cm.Labels[LabelHistory] != "true" || cm.Labels[LabelManagedBy] != "cvmanager" {
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels[LabelHistory], cm.Labels[LabelManagedBy] = "true", "cvmanager"
		changed = true
	}
	if _, ok := cm.Annotations[AnnotationContainerVersion]; !ok {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationContainerVersion] = cv.Name
		changed = true
	}
	return ensureOwner(cm, cv) || changed
}

func ensureOwner(cm *corev1.ConfigMap, cv *cvv1.ContainerVersion) bool {
	for _, ref := range cm.OwnerReferences {
		if ref.UID == cv.UID {
			return false
		}
	}
	ref := *metav1.NewControllerRef(cv, cvv1.SchemeGroupVersion.WithKind("ContainerVersion"))
	if metav1.GetControllerOfNoCopy(cm) != nil {
		ref.Controller = ptr.To(false)
	}
	cm.OwnerReferences = append(cm.OwnerReferences, ref)
	return true
}

// SetWriteBack records the git write-back outcome wb in the records of
// the history ConfigMap name (in cv's namespace) that carry a write-back of
// wb.RolloutID: the records the rollout's finish wrote with it Pending. It
// writes only when a record changes, so a repeated outcome costs one read
// and no write, and it retries on conflict like Append. A missing
// ConfigMap or a history without such a record is left alone: the record
// was written before records carried write-backs, or has been trimmed.
func (s *Store) SetWriteBack(ctx context.Context, cv *cvv1.ContainerVersion, name string, wb WriteBack) error {
	wb.Reason = truncate(wb.Reason, MaxReasonBytes)
	err := retry.OnError(s.backoff, retriable, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		cms := s.client.CoreV1().ConfigMaps(cv.Namespace)
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		changed, err := s.setWriteBack(cm, wb)
		if err != nil || !changed {
			return err
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("recording the write-back of rollout %s in history %s/%s: %w", wb.RolloutID, cv.Namespace, name, err)
	}
	return nil
}

// setWriteBack puts wb into cm's records of its rollout, in memory, and
// reports whether cm needs writing. An unreadable history is not touched:
// Append sets it aside with the next rollout's record.
func (s *Store) setWriteBack(cm *corev1.ConfigMap, wb WriteBack) (bool, error) {
	records, err := Decode(cm)
	if err != nil {
		return false, nil
	}
	changed := false
	for i := range records {
		if old := records[i].WriteBack; old != nil && old.RolloutID == wb.RolloutID && *old != wb {
			one := wb
			records[i].WriteBack = &one
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	data, _, err := encodeBounded(records, len(records), s.budget-otherBytes(cm))
	if err != nil {
		return false, err
	}
	cm.Data[DataKey] = data
	return true, nil
}
