package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// appendHistory records a finished rollout, as the original cvmanager did,
// once in the history of each workload it changed ("<workload>.history",
// see history.WorkloadConfigMapName); a rollout that covered no workload is
// recorded in the CV's own history. Record IDs derive from the CV, the
// rollout's start and the workload, and the store ignores an ID it already
// holds, so a controller that dies after these writes and redoes the finish
// does not record the rollout twice. workloads are those the CV selects.
func (c *Controller) appendHistory(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, planned *plannedRecord) error {
	r := planned.rollout
	now := c.clock.Now()
	rec := history.Record{
		ID:          rolloutID(cv, r, generationsOf(workloads)),
		Time:        now,
		CV:          cv.Name,
		Container:   cv.Spec.Container.Name,
		FromVersion: r.FromVersion, FromDigest: r.FromDigest,
		ToVersion: r.Version, ToDigest: r.Digest,
		Strategy:        rollout.StrategyKind(cv),
		Outcome:         planned.outcome,
		Reason:          planned.reason,
		Trigger:         r.Trigger,
		Signer:          r.Signer,
		Provenance:      c.rolloutProvenance(r),
		Jobs:            rollout.JobRecords(c.jobs.Lister, cv, r.Digest),
		DurationSeconds: now.Sub(r.StartTime.Time).Seconds(),
		WriteBack:       planned.writeBack,
	}
	keys := planned.workloads
	if len(keys) == 0 {
		keys = keysOf(workloads)
	}
	for _, w := range perWorkloadRecords(cv, rec, keys) {
		if err := c.history.AppendTo(ctx, cv, w.configMap, w.record); err != nil {
			return fmt.Errorf("recording history of %s: %w", namespacedKey(cv), err)
		}
	}
	return nil
}

// recordWriteBackInHistory puts a write-back outcome into the history
// records of its rollout: those of the workloads the CV selects
// (workloads), where rollouts are recorded, or the CV's own history when
// it selects none (as appendHistory chose). Store.SetWriteBack writes only
// a record that changes, so a replayed sync reads and writes nothing more.
func (c *Controller) recordWriteBackInHistory(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, wb history.WriteBack) error {
	names := []string{history.ConfigMapName(cv)}
	if len(workloads) > 0 {
		names = names[:0]
		seen := map[string]bool{}
		for _, w := range namesOf(workloads) {
			if name := history.WorkloadConfigMapName(w); !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	for _, name := range names {
		if err := c.history.SetWriteBack(ctx, cv, name, wb); err != nil {
			return err
		}
	}
	return nil
}

// rolloutProvenance is the provenance recorded for a rollout's digest:
// what status holds, else what was read since the last status write.
func (c *Controller) rolloutProvenance(r *cvv1.RolloutStatus) *cvv1.Provenance {
	if r.Provenance != nil {
		return r.Provenance
	}
	return c.provenanceOf(r.Digest)
}

// newRolloutID names a rollout from the CV's UID, the digest and the
// start time: what a replayed sync's effects are keyed by.
func newRolloutID(cv *cvv1.ContainerVersion, r *cvv1.RolloutStatus) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%s", cv.UID, r.Digest, r.StartTime.UnixNano(), r.Trigger))
	return hex.EncodeToString(sum[:6])
}

// workloadRecord is one workload's record of a rollout and the history
// ConfigMap it goes to.
type workloadRecord struct {
	configMap string
	record    history.Record
}

// perWorkloadRecords splits a rollout's record into one per workload key
// ("Deployment/web"). The ID gains the workload key, so a Deployment and a
// StatefulSet of one name, which share "<name>.history", keep a record each.
// A rollout that covered no workload keeps one record, in the CV's history.
func perWorkloadRecords(cv *cvv1.ContainerVersion, rec history.Record, workloads []string) []workloadRecord {
	if len(workloads) == 0 {
		return []workloadRecord{{configMap: history.ConfigMapName(cv), record: rec}}
	}
	out := make([]workloadRecord, 0, len(workloads))
	for _, key := range workloads {
		kind, name, found := strings.Cut(key, "/")
		if !found {
			kind, name = "", key
		}
		one := rec
		one.ID, one.Rollout, one.Workload, one.Kind = rec.ID+"-"+shortHash(key), rec.ID, key, kind
		out = append(out, workloadRecord{configMap: history.WorkloadConfigMapName(name), record: one})
	}
	return out
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// promotionOf returns the promotion that moved the CV's tag to digest: the
// newest record of the CV's history, when it is a promotion to that digest
// that no rollout has consumed yet (a rollout's record would be newer).
// Promotions are in the CV's own history and rollouts in its workloads'
// (history.CVHistory), so this reads those ConfigMaps, only when a new
// version is detected, and only when the CV's own history holds a
// promotion to digest at all: a CV nobody promotes costs one read, and
// each ConfigMap is read once. workloads are those the CV selects.
func (c *Controller) promotionOf(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, digest string) (history.Record, bool) {
	name := history.ConfigMapName(cv)
	own, err := c.history.List(ctx, cv.Namespace, name)
	if err != nil || !slices.ContainsFunc(own, func(r history.Record) bool {
		return r.Action == history.ActionPromote && r.ToDigest == digest
	}) {
		return history.Record{}, false
	}
	read := readHistory{Lister: c.history, namespace: cv.Namespace, name: name, records: own}
	records, err := history.CVHistory(ctx, read, cv, namesOf(workloads))
	if err != nil || len(records) == 0 {
		return history.Record{}, false
	}
	newest := records[0]
	return newest, newest.Action == history.ActionPromote && newest.ToDigest == digest
}

// readHistory is a history Lister that answers for one ConfigMap already
// read with the records read, and reads the others.
type readHistory struct {
	history.Lister
	namespace, name string
	records         []history.Record
}

func (r readHistory) List(ctx context.Context, namespace, name string) ([]history.Record, error) {
	if namespace == r.namespace && name == r.name {
		return r.records, nil
	}
	return r.Lister.List(ctx, namespace, name)
}

// namesOf are the names of workloads.
func namesOf(workloads []workload.Workload) []string {
	return idsOf(workloads, workload.Workload.Name)
}

// keysOf are the keys ("Deployment/web") of workloads.
func keysOf(workloads []workload.Workload) []string {
	return idsOf(workloads, workload.Workload.Key)
}

func idsOf(workloads []workload.Workload, id func(workload.Workload) string) []string {
	out := make([]string, 0, len(workloads))
	for _, w := range workloads {
		out = append(out, id(w))
	}
	return out
}

// rolloutID derives from what status keeps of the rollout (start time to
// the second), so a redone finish finds the record it already wrote.
// Restores and joins redeploy the same digest, possibly within the second
// of the previous rollout: their ID also carries the trigger and the
// generations of the selected workloads, which each such rollout bumps by
// its patch and a redone finish does not.
func rolloutID(cv *cvv1.ContainerVersion, r *cvv1.RolloutStatus, generations string) string {
	key := fmt.Sprintf("%s|%s|%d", cv.UID, r.Digest, r.StartTime.Unix())
	if r.Trigger == history.TriggerDrift || r.Trigger == history.TriggerJoin {
		key += "|" + r.Trigger + "|" + generations
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// generationsOf lists "Kind/name=generation" of workloads.
func generationsOf(workloads []workload.Workload) string {
	parts := make([]string, len(workloads))
	for i, w := range workloads {
		parts[i] = fmt.Sprintf("%s=%d", w.Key(), w.Object.GetGeneration())
	}
	return strings.Join(parts, ",")
}

// syncConfigKey keeps spec.config's ConfigMap key equal to the deployed
// version, creating the ConfigMap (owned by the CV) when it is missing.
func (c *Controller) syncConfigKey(ctx context.Context, cv *cvv1.ContainerVersion, version string) error {
	if cv.Spec.Config == nil {
		return nil
	}
	cms := c.kube.CoreV1().ConfigMaps(cv.Namespace)
	name, key := cv.Spec.Config.Name, cv.Spec.Config.Key
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: cv.Namespace,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cv, cvv1.SchemeGroupVersion.WithKind("ContainerVersion"))},
			}, Data: map[string]string{key: version}}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if cm.Data[key] == version {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[key] = version
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}
