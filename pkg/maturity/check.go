package maturity

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Verdict is the minAge rule's answer for one new digest.
type Verdict struct {
	// Allowed: old enough (or no minAge). Otherwise the digest is held:
	// status.availableDigest, ReleaseBlocked with Reason MinAge and
	// Message, status.heldUntil = Until, and a sync queued at Until.
	Allowed         bool
	Reason, Message string
	Until           time.Time
}

// Check applies cv's spec.policy.minAge to digest at now. created is the
// image's stated build time (provenance's Created, "" when it states
// none); known is false while the provenance read is pending, in which
// case the first sighting counts for now (a later sync with the build
// time may release it sooner or later). The first sighting survives a
// restart through status (FirstSeen).
func Check(cv *cvv1.ContainerVersion, digest, created string, known bool, now time.Time) Verdict {
	minAge := policyMinAge(cv)
	if minAge <= 0 {
		return Verdict{Allowed: true}
	}
	firstSeen := FirstSeen(cv, digest)
	var built *time.Time
	if known {
		built = ParseCreated(created)
	}
	ok, at := Eligible(built, firstSeen, minAge, now)
	if ok {
		return Verdict{Allowed: true, Until: at}
	}
	since := "first seen " + now.UTC().Format(time.RFC3339)
	switch {
	case built != nil && !built.After(now.Add(maxFuture)):
		since = "built " + built.UTC().Format(time.RFC3339)
	case firstSeen != nil:
		since = "first seen " + firstSeen.UTC().Format(time.RFC3339)
	}
	return Verdict{Reason: cvv1.ReasonMinAge, Until: at,
		Message: fmt.Sprintf("the image (%s) is younger than policy.minAge %s; eligible at %s", since, minAge, at.UTC().Format(time.RFC3339))}
}

// FirstSeen is when the controller first saw digest, as status keeps it:
// status.availableSince while digest is the available one, nil for a
// digest not held before (its first sighting is now).
//
// A CV held by a cvmanager from before availableSince dated the first
// sighting only through status.heldUntil, first sighting + minAge. That
// is believed only while the hold is minAge's own (ReleaseBlocked with
// reason MinAge; a soak's heldUntil says nothing of the sighting), and
// only until the controller writes the answer to availableSince at the
// next hold it plans, so a later change of minAge no longer moves it.
func FirstSeen(cv *cvv1.ContainerVersion, digest string) *time.Time {
	st := &cv.Status
	switch {
	case digest == "" || st.AvailableDigest != digest:
		return nil
	case st.AvailableSince != nil:
		t := st.AvailableSince.Time
		return &t
	case st.HeldUntil != nil && policyMinAge(cv) > 0 && heldByMinAge(st.Conditions):
		t := st.HeldUntil.Add(-policyMinAge(cv))
		return &t
	}
	return nil
}

func policyMinAge(cv *cvv1.ContainerVersion) time.Duration {
	if cv.Spec.Policy == nil {
		return 0
	}
	return MinAge(cv.Spec.Policy.MinAge)
}

func heldByMinAge(conditions []metav1.Condition) bool {
	c := meta.FindStatusCondition(conditions, cvv1.ConditionReleaseBlocked)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == cvv1.ReasonMinAge
}
