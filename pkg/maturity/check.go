package maturity

import (
	"fmt"
	"time"

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
// restart through status: a digest already held (status.availableDigest)
// was first seen at status.heldUntil - minAge when no build time is known.
func Check(cv *cvv1.ContainerVersion, digest, created string, known bool, now time.Time) Verdict {
	var minAge time.Duration
	if cv.Spec.Policy != nil {
		minAge = MinAge(cv.Spec.Policy.MinAge)
	}
	if minAge <= 0 {
		return Verdict{Allowed: true}
	}
	var firstSeen *time.Time
	if st := cv.Status; st.AvailableDigest == digest && st.HeldUntil != nil {
		t := st.HeldUntil.Add(-minAge)
		firstSeen = &t
	}
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
