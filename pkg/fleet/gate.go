// Package fleet joins clusters that each run their own cvmanager: it reads
// a promotion source, a ContainerVersion in another cluster, through a
// kubeconfig (a Secret in the target's namespace, the way Argo CD keeps
// cluster credentials, or a context of the user's kubeconfig), and decides
// purely whether the version it runs may move on. Clusters stay
// independent: there is no coordinator, only reads of one object.
//
// The gate (Gate) opens when the source's last successful version has run
// with status Success, not drifted, and signed when the source verifies
// signatures, for at least the soak time. Every refusal names its reason
// (the ReasonSource* and ReasonSoaking constants of the API).
package fleet

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Verdict is the gate's answer for one source.
type Verdict struct {
	// Open is true when Version/Digest may be promoted now.
	Open bool
	// Reason is a CamelCase reason when closed (cvv1.ReasonSoaking, …).
	Reason string
	// Message explains it to a person.
	Message string
	// Version and Digest are the source's last successful version, the
	// candidate for promotion (empty when it has none).
	Version, Digest string
	// Since is when the source reached Success on Digest; Until is when
	// the soak ends (set when Reason is Soaking or the gate is open).
	Since, Until time.Time
}

// GateOptions are the conditions the source must meet.
type GateOptions struct {
	// MinSoak is how long the source must have been Success on its version.
	MinSoak time.Duration
	// RequireVerified refuses a source whose successful image carries no
	// verified signature (status.signer empty). Set it when the target
	// enforces signatures or the source declares spec.policy.verify.
	RequireVerified bool
}

// Gate decides whether src's last successful version may be promoted at
// now. It reads only src's status; nil src is unreachable.
func Gate(src *cvv1.ContainerVersion, opts GateOptions, now time.Time) Verdict {
	if src == nil {
		return Verdict{Reason: cvv1.ReasonSourceUnreachable, Message: "the promotion source could not be read"}
	}
	st := &src.Status
	key := src.Namespace + "/" + src.Name
	v := Verdict{Version: st.SuccessVersion, Digest: st.SuccessDigest}
	closed := func(reason, format string, args ...any) Verdict {
		v.Reason, v.Message = reason, fmt.Sprintf(format, args...)
		return v
	}
	switch {
	case st.SuccessDigest == "":
		return closed(cvv1.ReasonSourceFailing, "%s has no successful version (current %s, %s)", key, dash(st.CurrVersion), dash(st.CurrStatus))
	case st.CurrStatus == cvv1.StatusFailed || st.FailedDigest == st.SuccessDigest:
		return closed(cvv1.ReasonSourceFailing, "%s is Failed on %s", key, dash(st.CurrVersion))
	case st.CurrStatus != cvv1.StatusSuccess || st.CurrDigest != st.SuccessDigest:
		return closed(cvv1.ReasonSourceFailing, "%s is %s on %s, not yet Success; the soak starts when it is", key, dash(st.CurrStatus), dash(st.CurrVersion))
	case conditionTrue(st.Conditions, cvv1.ConditionDrifted):
		return closed(cvv1.ReasonSourceDrifted, "%s is drifted: its workloads do not all run %s", key, st.SuccessVersion)
	case opts.RequireVerified && st.Signer == "":
		return closed(cvv1.ReasonSourceUnverified, "%s runs %s without a verified signature", key, st.SuccessVersion)
	case st.CurrStatusTime == nil:
		return closed(cvv1.ReasonSoaking, "%s does not say since when it runs %s", key, st.SuccessVersion)
	}
	v.Since = st.CurrStatusTime.Time
	v.Until = v.Since.Add(opts.MinSoak)
	if now.Before(v.Until) {
		// The message does not change as the soak goes on: the hold it
		// explains is written once, not at every read of the source.
		return closed(cvv1.ReasonSoaking, "%s has run %s since %s; the %s soak makes it eligible at %s", key, st.SuccessVersion,
			v.Since.UTC().Format(time.RFC3339), opts.MinSoak, v.Until.UTC().Format(time.RFC3339))
	}
	v.Open = true
	v.Message = fmt.Sprintf("%s has run %s for %s (soak %s)", key, st.SuccessVersion, now.Sub(v.Since).Round(time.Second), opts.MinSoak)
	return v
}

// MinSoak is a promotion source's minSoakSeconds as a duration.
func MinSoak(from *cvv1.PromotionSource) time.Duration {
	if from == nil || from.MinSoakSeconds == nil || *from.MinSoakSeconds <= 0 {
		return 0
	}
	return time.Duration(*from.MinSoakSeconds) * time.Second
}

func conditionTrue(conds []metav1.Condition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
