package controller

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// updateStatus writes cv.Status through the status subresource and keeps
// cv's resourceVersion current for the next write in the same sync.
//
// A conflict means someone changed the CV since the sync read it. When
// only its metadata changed (an annotation, a label: kubectl, GitOps tools)
// the status computed here is still right, and it is written again on the
// fresh resourceVersion; a busy writer would otherwise make every sync lose
// the race. When the spec or the status changed, the conflict is returned
// and the key is retried from the fresh cache: a status another sync wrote
// meanwhile (the cache lagging behind a rollout this controller just
// finished) must not be overwritten, or that rollout finishes twice.
func (c *Controller) updateStatus(ctx context.Context, cv *cvv1.ContainerVersion) error {
	cv.Status.ObservedGeneration = cv.Generation
	cvs := c.cvClient.CvmanagerV1alpha1().ContainerVersions(cv.Namespace)
	read, _ := ctx.Value(statusReadKey{}).(*statusRead)
	changed := false
	retriable := func(err error) bool { return apierrors.IsConflict(err) && !changed }
	return retry.OnError(retry.DefaultRetry, retriable, func() error {
		updated, err := cvs.UpdateStatus(ctx, cv, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, getErr := cvs.Get(ctx, cv.Name, metav1.GetOptions{})
			if getErr != nil || fresh.Generation != cv.Generation || !read.matches(fresh.Status) {
				changed = true
				return errors.Join(err, getErr)
			}
			cv.ResourceVersion = fresh.ResourceVersion
			return err
		}
		if err != nil {
			return err
		}
		cv.ResourceVersion = updated.ResourceVersion
		if read != nil {
			read.status = &updated.Status // as stored: times are kept to the second
		}
		return nil
	})
}

// statusRead is the status a sync read (or last wrote) for its CV: what
// the stored status must still be for a conflicting write to be retried.
type statusRead struct{ status *cvv1.ContainerVersionStatus }

type statusReadKey struct{}

// withStatusRead records cached's status for the status writes of one
// sync (cached objects are never modified, so no copy is needed).
func withStatusRead(ctx context.Context, cached *cvv1.ContainerVersion) context.Context {
	return context.WithValue(ctx, statusReadKey{}, &statusRead{status: &cached.Status})
}

// matches reports whether stored is still the status the sync read; a
// write outside a sync (no record) never retries a conflict.
func (r *statusRead) matches(stored cvv1.ContainerVersionStatus) bool {
	return r != nil && equality.Semantic.DeepEqual(*r.status, stored)
}

func setCondition(cv *cvv1.ContainerVersion, condType string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	meta.SetStatusCondition(&cv.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: truncate(message, 1024),
		ObservedGeneration: cv.Generation, LastTransitionTime: metav1.Time{Time: now},
	})
}

func findCondition(conditions []metav1.Condition, condType string) *metav1.Condition {
	return meta.FindStatusCondition(conditions, condType)
}

func setCurrStatus(cv *cvv1.ContainerVersion, status string, now time.Time) {
	if cv.Status.CurrStatus != status || cv.Status.CurrStatusTime == nil {
		cv.Status.CurrStatusTime = &metav1.Time{Time: now}
	}
	cv.Status.CurrStatus = status
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
