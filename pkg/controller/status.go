package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

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
