package controller

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/maturity"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// AnnotationRelease approves a held version: `cvmanager release` sets it to
// the digest (or version) to deploy. It lets Manual release mode and the
// no-downgrade rule and policy.autoReleaseBranches through; allowedVersions,
// policy.branchRestriction and controller restrictions still apply, since no
// release may loosen them.
const AnnotationRelease = "cvmanager.dev/release"

// ReasonReleaseBlocked is the Event and condition reason of a held version.
const ReasonReleaseBlocked = "ReleaseBlocked"

// gate runs the release policy chain on a new version. Explicit releases
// skip only the rules a user may override.
func (c *Controller) gate(cv *cvv1.ContainerVersion, version, digest string) policy.Verdict {
	explicit := released(cv, version, digest)
	syntax, _ := registry.CompileVersionSyntax(cv.Spec.VersionSyntax) // poll refused an invalid one already
	checks := []func() policy.Verdict{
		func() policy.Verdict {
			return policy.CheckRestrictions(c.settings().Restrictions, cv.Namespace, version)
		},
		func() policy.Verdict { return policy.CheckAllowed(cv.Spec.Policy, version) },
		func() policy.Verdict { return policy.CheckBranchRestriction(cv.Spec.Policy, syntax, version) },
	}
	if !explicit {
		checks = append(checks,
			func() policy.Verdict { return policy.CheckDowngrade(cv.Status.SuccessVersion, version) },
			func() policy.Verdict { return policy.CheckAutoReleaseBranch(cv.Spec.Policy, syntax, version) },
			func() policy.Verdict {
				if policy.ManualRelease(cv.Spec.Policy) {
					return policy.Verdict{Reason: "AwaitingRelease",
						Message: "version " + version + " is available; releaseMode is Manual: run `cvmanager release` to deploy it"}
				}
				return policy.Verdict{Allowed: true}
			})
	}
	for _, check := range checks {
		if v := check(); !v.Allowed {
			return v
		}
	}
	return policy.Verdict{Allowed: true}
}

func released(cv *cvv1.ContainerVersion, version, digest string) bool {
	want := cv.Annotations[AnnotationRelease]
	return want != "" && (want == digest || want == version)
}

// clearHold marks the release gate open once a version passes it.
func clearHold(cv *cvv1.ContainerVersion, now metav1.Time) {
	cv.Status.AvailableVersion, cv.Status.AvailableDigest, cv.Status.AvailableSince = "", "", nil
	cv.Status.HeldUntil = nil
	if findCondition(cv.Status.Conditions, cvv1.ConditionReleaseBlocked) != nil {
		setCondition(cv, cvv1.ConditionReleaseBlocked, metav1.ConditionFalse, "Released", "", now.Time)
	}
}

// markAvailable shows digest as held (status.availableVersion and
// availableDigest) and keeps its first sighting in status.availableSince,
// which spec.policy.minAge counts from: now for a digest newly held,
// unchanged while the same digest stays held. A hold written by a version
// of cvmanager without availableSince gets the sighting maturity.FirstSeen
// infers for it, written once.
func markAvailable(cv *cvv1.ContainerVersion, version, digest string, now time.Time) {
	st := &cv.Status
	if st.AvailableDigest != digest || st.AvailableSince == nil {
		since := now
		if t := maturity.FirstSeen(cv, digest); t != nil {
			since = *t
		}
		st.AvailableSince = &metav1.Time{Time: since}
	}
	st.AvailableVersion, st.AvailableDigest = version, digest
}

// setHeldUntil records when the held digest becomes eligible on its own
// (minAge, soak); nil clears it.
func setHeldUntil(cv *cvv1.ContainerVersion, until *time.Time) {
	cv.Status.HeldUntil = nil
	if until != nil {
		t := metav1.NewTime(*until)
		cv.Status.HeldUntil = &t
	}
}

func conditionIs(cv *cvv1.ContainerVersion, condType, reason string) bool {
	c := findCondition(cv.Status.Conditions, condType)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}
