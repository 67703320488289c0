package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// appendHistory records a finished rollout. The record ID derives from the
// CV and the rollout's start, and the store ignores an ID it already holds,
// so a controller that dies after this write and redoes the finish does not
// record the rollout twice.
func (c *Controller) appendHistory(ctx context.Context, cv *cvv1.ContainerVersion, p rollout.Progress, outcome, reason string) error {
	if !cv.Spec.History.Enabled && !c.opts.DefaultHistory {
		return nil
	}
	r := cv.Status.Rollout
	now := c.clock.Now()
	rec := history.Record{
		ID:          rolloutID(cv, r, c.workloadGenerations(cv)),
		Time:        now,
		Workload:    strings.Join(p.Workloads, ","),
		Container:   cv.Spec.Container.Name,
		FromVersion: r.FromVersion, FromDigest: r.FromDigest,
		ToVersion: r.Version, ToDigest: r.Digest,
		Strategy:        rollout.StrategyKind(cv),
		Outcome:         outcome,
		Reason:          reason,
		Trigger:         r.Trigger,
		Jobs:            rollout.JobRecords(c.lifecycle.Jobs.Lister, cv, r.Digest),
		DurationSeconds: now.Sub(r.StartTime.Time).Seconds(),
	}
	if err := c.history.Append(ctx, cv, rec); err != nil {
		return fmt.Errorf("recording history of %s: %w", namespacedKey(cv), err)
	}
	return nil
}

// promotionOf returns the promotion that moved the CV's tag to digest: the
// newest history record, when it is a promotion to that digest that no
// rollout has consumed yet (a rollout's record would be newer). One read
// of the history ConfigMap, only when a new version is detected.
func (c *Controller) promotionOf(ctx context.Context, cv *cvv1.ContainerVersion, digest string) (history.Record, bool) {
	records, err := c.history.List(ctx, cv.Namespace, history.ConfigMapName(cv))
	if err != nil || len(records) == 0 {
		return history.Record{}, false
	}
	newest := records[0]
	return newest, newest.Action == history.ActionPromote && newest.ToDigest == digest
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

// workloadGenerations lists "Kind/name=generation" of the CV's selected
// workloads, from the cache.
func (c *Controller) workloadGenerations(cv *cvv1.ContainerVersion) string {
	sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	if err != nil {
		return ""
	}
	workloads, err := c.workloads.Select(cv.Namespace, sel)
	if err != nil {
		return ""
	}
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
