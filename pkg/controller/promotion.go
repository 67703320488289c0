package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Automatic promotion between clusters (spec.promotion.from, pkg/fleet) is
// an observer and a plan rule. The observer reads the source CV in the
// other cluster in the background (one GET per interval, through the
// kubeconfig Secret the CV names, which its author must be allowed to
// read) and never blocks a sync on another cluster. The rule promotes the
// source's version once it has soaked there, through the same checks as
// any new version of the target (judgeStart: release gate, minAge,
// platform gate, signature, access); a source that cannot be read, is
// failing, drifted, unverified or still soaking holds the target, which
// never rolls anything then. A CV that follows a source follows it, not
// its own tag: polling the tag would undo each promotion.

// promotionLastReadEvery is how often status.promotion.lastRead is written
// when nothing else about the source changed.
const promotionLastReadEvery = 10 * time.Minute

// promotionObservation is what a sync knows of the CV's promotion source.
type promotionObservation struct {
	decision fleet.Decision
	refused  string
	pending  bool
	// verdict is the target's own rules on the promoted digest; heldUntil
	// is set when spec.policy.minAge holds it, and judging while a verdict
	// it needs is still being read (the image index's platforms).
	verdict   policy.Verdict
	heldUntil *time.Time
	judging   bool
	signature signatureVerdict
	authz     authzResult
	readAt    time.Time
}

// follows reports whether cv takes its versions from a source CV, and this
// controller can read sources.
func (c *Controller) follows(cv *cvv1.ContainerVersion) bool {
	return cv.Spec.Promotion != nil && c.opts.Fleet != nil && c.opts.Kubeconfigs != nil
}

// observePromotion reads (from the observer's cache) the CV's source and
// the verdicts a promotion of its version to the selected workloads needs.
func (c *Controller) observePromotion(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (*promotionObservation, error) {
	o := &promotionObservation{}
	key := namespacedKey(cv)
	if c.authz != nil {
		verdict, err := c.authz.Secrets(ctx, cv, []string{fleet.SecretName(cv)})
		az, err := asAuthzResult(verdict, err)
		if err != nil || az.refused != "" {
			o.refused = "not reading the promotion source: " + az.refused
			return o, err
		}
	}
	kubeconfig, readErr := c.opts.Kubeconfigs.Get(ctx, cv)
	if readErr == nil {
		c.opts.Fleet.Request(ctx, key, kubeconfig, &cv.Spec.Promotion.From, func() { c.queue.Add(key) })
	}
	read, ok := c.opts.Fleet.Lookup(key)
	if !ok && readErr == nil {
		o.pending = true // the first read is under way: its answer wakes the CV
		return o, nil
	}
	if readErr == nil {
		readErr = read.Err
	}
	now := c.clock.Now()
	c.queue.AddAfter(key, max(c.opts.Fleet.NextRead(key).Sub(now), time.Second))
	o.readAt = read.At
	o.decision = fleet.Decide(cv, read.CV, readErr, requiresVerified(cv, c.opts.Signatures.Require), now)
	if o.decision.Promote {
		return o, c.judgePromotion(ctx, cv, workloads, o)
	}
	return o, nil
}

// judgePromotion runs a promoted version through the target's own rules,
// the same as a version the target's poll found (judgeStart).
func (c *Controller) judgePromotion(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload, o *promotionObservation) error {
	d := o.decision
	j := &pollObservation{version: d.Version, img: poller.ResolvedImage{Digest: d.Digest, Version: d.Version}}
	_, err := c.judgeStart(ctx, cv, workloads, j)
	o.verdict, o.heldUntil, o.judging, o.signature, o.authz = j.verdict, j.heldUntil, j.pending, j.signature, j.authz
	return err
}

// requiresVerified: the target insists on signatures, so its source must
// have verified the version it offers.
func requiresVerified(cv *cvv1.ContainerVersion, require bool) bool {
	spec := signatureSpec(cv)
	return require || spec != nil && spec.Mode != cvv1.VerifyAudit
}

// planPromotion is the rule for a CV that follows a source.
func planPromotion(snap *snapshot, d *decision) {
	o := snap.promotion
	switch {
	case o.refused != "":
		refuse(snap, d, o.refused, "", "")
		return
	case o.pending:
		return
	}
	recordSource(snap, d)
	dec := o.decision
	switch {
	case dec.Hold:
		holdPromotion(snap, d, dec.Reason, dec.Message, dec.Version, dec.Digest, dec.HeldUntil)
	case dec.Promote && o.judging:
		// a verdict is being read (the index's platforms): its read wakes the CV
	case dec.Promote && !o.verdict.Allowed:
		holdPromotion(snap, d, o.verdict.Reason, o.verdict.Message, dec.Version, dec.Digest, o.heldUntil)
	case dec.Promote && dec.Digest == snap.cv.Status.CurrDigest:
		// the digest whose rollout failed, the failure cleared by a
		// request (fleet.Decide): tried again, not promoted anew
		start(snap, d, poller.ResolvedImage{Digest: dec.Digest, Version: dec.Version}, history.TriggerClearFailed, o.signature, o.authz)
	case dec.Promote:
		src := snap.cv.Spec.Promotion.From
		d.effects = append(d.effects, notification(notify.Promoted, dec.Version, dec.Digest,
			src.Namespace+"/"+src.Name, dec.Message))
		start(snap, d, poller.ResolvedImage{Digest: dec.Digest, Version: dec.Version}, history.TriggerPromote, o.signature, o.authz)
	}
}

// recordSource writes status.promotion when what is known of the source
// changed, and lastRead only now and then: a read every 30 s must not
// cost a status write every 30 s.
func recordSource(snap *snapshot, d *decision) {
	next := snap.promotion.decision.Status
	if next == nil {
		return
	}
	next = next.DeepCopy()
	if !snap.promotion.readAt.IsZero() && next.LastRead != nil {
		next.LastRead = &metav1.Time{Time: snap.promotion.readAt}
	}
	prev := d.cv.Status.Promotion
	if prev != nil && prev.LastRead != nil && next.LastRead != nil {
		stale := next.LastRead.Sub(prev.LastRead.Time) >= promotionLastReadEvery
		sameSource := *prev
		sameSource.LastRead = next.LastRead
		if equality.Semantic.DeepEqual(&sameSource, next) && !stale {
			next.LastRead = prev.LastRead
		}
	}
	d.cv.Status.Promotion = next
}

// holdPromotion keeps the target where it is and says why, once per reason
// and message: the ReleaseBlocked condition, an Event and, as hold does for
// a version the poll found, a Blocked notification. A soak is the expected
// wait before every promotion, not a refusal: it notifies nobody.
func holdPromotion(snap *snapshot, d *decision, reason, message, version, digest string, until *time.Time) {
	cv := snap.cv
	if until != nil {
		d.requeue = max(until.Sub(snap.now), time.Second) // look again when it is eligible
	}
	if digest != "" && digest != cv.Status.CurrDigest {
		markAvailable(d.cv, version, digest, snap.now)
	}
	if conditionIs(cv, cvv1.ConditionReleaseBlocked, reason) &&
		findCondition(cv.Status.Conditions, cvv1.ConditionReleaseBlocked).Message == truncate(message, 1024) {
		return
	}
	setHeldUntil(d.cv, until)
	setCondition(d.cv, cvv1.ConditionReleaseBlocked, metav1.ConditionTrue, reason, message, snap.now)
	text := fmt.Sprintf("promotion held: %s", message)
	d.effects = append(d.effects, normal(ReasonReleaseBlocked, text))
	if reason != cvv1.ReasonSoaking {
		d.effects = append(d.effects, notification(notify.Blocked, version, digest, cv.Status.CurrVersion, text))
	}
}
