// Package maturity decides when a new image is old enough to deploy
// (spec.policy.minAge): a fresh image is held until its build time, or,
// when the image states none, the time cvmanager first saw its digest, is
// minAge in the past. Users of other tools ask for this delay so a bad
// build pushed by mistake, or a compromised one, can be caught before it
// reaches every cluster.
//
// The build time comes from the provenance the controller already reads
// once per new digest (org.opencontainers.image.created), so the rule
// costs no registry request of its own.
package maturity

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxFuture bounds how far in the future a stated build time is believed:
// a clock a little ahead on the build machine is normal, a date years
// ahead would hold an image for ever, so such a time is ignored and the
// first sighting counts instead.
const maxFuture = 10 * time.Minute

// Eligible reports whether an image created at created (nil when the image
// states no build time) and first seen at firstSeen (nil when not yet
// recorded: now is used) may be deployed at now under minAge, and at
// which time it becomes (or became) eligible. minAge ≤ 0 lets everything
// through at once.
func Eligible(created, firstSeen *time.Time, minAge time.Duration, now time.Time) (ok bool, at time.Time) {
	if minAge <= 0 {
		return true, now
	}
	born := now
	switch {
	case created != nil && !created.IsZero() && !created.After(now.Add(maxFuture)):
		born = *created
	case firstSeen != nil && !firstSeen.IsZero():
		born = *firstSeen
	}
	at = born.Add(minAge)
	return !now.Before(at), at
}

// ParseCreated reads an image's stated build time (RFC 3339, as
// org.opencontainers.image.created is written); nil when absent or
// unreadable, so the first sighting counts instead.
func ParseCreated(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return nil
	}
	return &t
}

// MinAge is the policy's minAge, 0 when unset.
func MinAge(d *metav1.Duration) time.Duration {
	if d == nil || d.Duration < 0 {
		return 0
	}
	return d.Duration
}
