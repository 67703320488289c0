package controller

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// updateStatus writes cv.Status through the status subresource and keeps
// cv's resourceVersion current for the next write in the same sync.
//
// Only the leader writes status, so a conflict means another writer
// changed the CV's metadata (an annotation, a label: kubectl, GitOps
// tools). When the spec is unchanged (same generation) the status computed
// here is still right, and it is written again on the fresh
// resourceVersion; a busy writer would otherwise make every sync lose the
// race. A changed spec returns the conflict, so the key is retried from
// the fresh cache.
func (c *Controller) updateStatus(ctx context.Context, cv *cvv1.ContainerVersion) error {
	cv.Status.ObservedGeneration = cv.Generation
	cvs := c.cvClient.CvmanagerV1alpha1().ContainerVersions(cv.Namespace)
	specChanged := false
	retriable := func(err error) bool { return apierrors.IsConflict(err) && !specChanged }
	return retry.OnError(retry.DefaultRetry, retriable, func() error {
		updated, err := cvs.UpdateStatus(ctx, cv, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, getErr := cvs.Get(ctx, cv.Name, metav1.GetOptions{})
			if getErr != nil || fresh.Generation != cv.Generation {
				specChanged = true
				return errors.Join(err, getErr)
			}
			cv.ResourceVersion = fresh.ResourceVersion
			return err
		}
		if err != nil {
			return err
		}
		cv.ResourceVersion = updated.ResourceVersion
		return nil
	})
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
