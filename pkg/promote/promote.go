// Package promote moves a version that succeeded in one environment to the
// next: it tags the source ContainerVersion's last successful digest with
// the tag the target ContainerVersion watches, so the target's own
// controller rolls it out with the target's strategy and checks. The
// registry is the only thing promotion writes besides the target's history;
// it never touches workloads.
package promote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// Tagger adds tags to an image within one repository. The image is named
// by its version tag, as registries retag by tag, and by its digest, which
// the tagger must check so a version tag re-pushed since the source
// deployed it is never promoted. The CLI adapts the registry layer to it.
type Tagger interface {
	AddTags(ctx context.Context, repo, version, digest string, tags []string) error
}

// ErrRefused wraps every reason a promotion is refused (as opposed to an
// API or registry failure), so callers and tests can tell them apart.
var ErrRefused = errors.New("promotion refused")

// Promoter plans and performs promotions.
type Promoter struct {
	Kube   kubernetes.Interface
	CVs    versioned.Interface
	Tagger Tagger
	// Restrictions are the controller's global version restrictions, which
	// a promotion must respect like any rollout.
	Restrictions []policy.Restriction
	// AllowDowngrade promotes a version older than the target's; the
	// target's controller then still holds it until `cvmanager release`.
	AllowDowngrade bool
	// Clock stamps the promotion's record and times the soak; nil means
	// the real clock.
	Clock clock.Clock
	// Poll, when set, asks the target's controller to poll now, with
	// trigger promote, once the promotion is recorded: the controller reads
	// the promotion's record (for the rollout's trigger and the Promoted
	// notification) only when such a request asks it to.
	Poll func(ctx context.Context, namespace, name, trigger string) error

	// Source reads the source CV when it lives in another cluster (nil:
	// CVs); SourceCluster and TargetCluster name the clusters for the
	// output and the history.
	Source                       versioned.Interface
	SourceCluster, TargetCluster string
	// MinSoak is how long the source must have run its version with
	// Success, not drifted; nil takes the target's
	// spec.promotion.from.minSoakSeconds (0 when it has none). When a soak
	// applies or the source is in another cluster, the fleet gate decides
	// (failing, drifted, unverified and soaking sources are refused).
	MinSoak *time.Duration
}

// Plan is a checked promotion: what would be tagged where.
type Plan struct {
	From    types.NamespacedName `json:"from"`
	To      types.NamespacedName `json:"to"`
	Repo    string               `json:"repo"`
	Version string               `json:"version"`
	Digest  string               `json:"digest"`
	Tag     string               `json:"tag"`
	// TargetVersion and TargetDigest are what the target last deployed successfully.
	TargetVersion string `json:"targetVersion,omitempty"`
	TargetDigest  string `json:"targetDigest,omitempty"`
	// FromCluster and ToCluster name the clusters of a cross-cluster promotion.
	FromCluster string `json:"fromCluster,omitempty"`
	ToCluster   string `json:"toCluster,omitempty"`
	// Soak is the fleet gate's account of the source's soak, when it applied.
	Soak string `json:"soak,omitempty"`
	// Notes are things the user should know that do not block it.
	Notes  []string `json:"notes,omitempty"`
	target *cvv1.ContainerVersion
}

// Plan reads both CVs and checks that the promotion is allowed. It writes
// nothing, so it is also the dry run.
func (p *Promoter) Plan(ctx context.Context, from, to types.NamespacedName) (*Plan, error) {
	if from == to && p.Source == nil {
		return nil, fmt.Errorf("%w: source and target are both %s", ErrRefused, from)
	}
	src, err := p.get(ctx, p.sourceClient(), from)
	if err != nil {
		return nil, err
	}
	dst, err := p.get(ctx, p.CVs, to)
	if err != nil {
		return nil, err
	}
	if err := CheckSource(src); err != nil {
		return nil, err
	}
	soak, err := p.checkSoak(src, dst)
	if err != nil {
		return nil, err
	}
	if err := CheckTarget(src, dst, p.Restrictions, p.AllowDowngrade); err != nil {
		return nil, err
	}
	plan := &Plan{From: from, To: to, Repo: dst.Spec.ImageRepo, Version: src.Status.SuccessVersion,
		Digest: src.Status.SuccessDigest, Tag: dst.Spec.Tag, TargetVersion: dst.Status.SuccessVersion,
		TargetDigest: dst.Status.SuccessDigest, Notes: notes(src, dst), target: dst,
		FromCluster: p.SourceCluster, ToCluster: p.TargetCluster, Soak: soak}
	return plan, nil
}

// sourceClient reads the source: Source when set, else CVs.
func (p *Promoter) sourceClient() versioned.Interface {
	if p.Source != nil {
		return p.Source
	}
	return p.CVs
}

// checkSoak applies the fleet gate when a soak is asked for or the source
// is in another cluster; it returns the gate's account for the plan.
func (p *Promoter) checkSoak(src, dst *cvv1.ContainerVersion) (string, error) {
	var soak time.Duration
	if p.MinSoak != nil {
		soak = *p.MinSoak
	} else if dst.Spec.Promotion != nil {
		soak = fleet.MinSoak(&dst.Spec.Promotion.From)
	}
	if soak <= 0 && p.Source == nil {
		return "", nil
	}
	opts := fleet.GateOptions{MinSoak: soak, RequireVerified: signaturesApply(src, dst)}
	v := fleet.Gate(src, opts, p.now())
	if !v.Open {
		return "", fmt.Errorf("%w: %s (%s)", ErrRefused, v.Message, v.Reason)
	}
	return v.Message, nil
}

// signaturesApply: the source verified its image (spec.policy.verify) or
// the target enforces signatures; the source must then show a signer.
func signaturesApply(src, dst *cvv1.ContainerVersion) bool {
	if src.Spec.Policy != nil && src.Spec.Policy.Verify != nil {
		return true
	}
	pol := dst.Spec.Policy
	return pol != nil && pol.Verify != nil && (pol.Verify.Mode == "" || pol.Verify.Mode == cvv1.VerifyEnforce)
}

func (p *Promoter) now() time.Time {
	if p.Clock != nil {
		return p.Clock.Now()
	}
	return time.Now()
}

func (p *Promoter) get(ctx context.Context, client versioned.Interface, key types.NamespacedName) (*cvv1.ContainerVersion, error) {
	cv, err := client.CvmanagerV1alpha1().ContainerVersions(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("ContainerVersion %s: %w", key, err)
	}
	return cv, nil
}

// CheckSource refuses a source with no version to promote: one that never
// succeeded, or whose last successful digest has since failed there.
func CheckSource(src *cvv1.ContainerVersion) error {
	st := src.Status
	key := src.Namespace + "/" + src.Name
	if st.SuccessDigest == "" || st.SuccessVersion == "" {
		return fmt.Errorf("%w: %s has no successful version to promote (current %s, status %s)", ErrRefused,
			key, orDash(st.CurrVersion), orDash(st.CurrStatus))
	}
	if st.FailedDigest == st.SuccessDigest || (st.CurrStatus == cvv1.StatusFailed && st.CurrDigest == st.SuccessDigest) {
		return fmt.Errorf("%w: %s is Failed on %s (%s), its last successful version", ErrRefused, key,
			st.SuccessVersion, st.SuccessDigest)
	}
	return nil
}

// CheckTarget refuses what the target could not or would not deploy: an
// image from another repository, or a version its policy (allowedVersions,
// branchRestriction), the controller's restrictions or the no-downgrade
// rule (unless allowDowngrade) block. The first three are the rules of the
// target controller's release gate that no `cvmanager release` overrides:
// a version they block would never be rolled out, so its tag is not moved.
func CheckTarget(src, dst *cvv1.ContainerVersion, restrictions []policy.Restriction, allowDowngrade bool) error {
	if src.Spec.ImageRepo != dst.Spec.ImageRepo {
		return fmt.Errorf("%w: %s follows %s but %s follows %s; promotion retags within one repository and cannot copy images between repositories",
			ErrRefused, src.Namespace+"/"+src.Name, src.Spec.ImageRepo, dst.Namespace+"/"+dst.Name, dst.Spec.ImageRepo)
	}
	version := src.Status.SuccessVersion
	verdicts := []policy.Verdict{
		policy.CheckRestrictions(restrictions, dst.Namespace, version),
		policy.CheckAllowed(dst.Spec.Policy, version),
		checkBranch(dst, version),
	}
	if !allowDowngrade {
		verdicts = append(verdicts, policy.CheckDowngrade(dst.Status.SuccessVersion, version))
	}
	for _, v := range verdicts {
		if !v.Allowed {
			return fmt.Errorf("%w: %s cannot take %s: %s (%s)", ErrRefused, dst.Namespace+"/"+dst.Name, version, v.Message, v.Reason)
		}
	}
	return nil
}

// checkBranch applies the target's spec.policy.branchRestriction, reading
// the version's branch with the target's versionSyntax as its controller
// does.
func checkBranch(dst *cvv1.ContainerVersion, version string) policy.Verdict {
	syntax, err := registry.CompileVersionSyntax(dst.Spec.VersionSyntax)
	if err != nil {
		return policy.Verdict{Reason: "InvalidPolicy", Message: err.Error()}
	}
	return policy.CheckBranchRestriction(dst.Spec.Policy, syntax, version)
}

// notes explain what will happen after the tag moves.
func notes(src, dst *cvv1.ContainerVersion) []string {
	var out []string
	if src.Status.CurrStatus == cvv1.StatusFailed {
		out = append(out, fmt.Sprintf("the source is Failed on %s; promoting its last success %s", src.Status.CurrVersion, src.Status.SuccessVersion))
	}
	if dst.Status.CurrDigest == src.Status.SuccessDigest && dst.Status.CurrStatus == cvv1.StatusSuccess {
		out = append(out, "the target already runs this digest; the tag is set again (no rollout)")
	}
	if syntax, err := registry.CompileVersionSyntax(dst.Spec.VersionSyntax); err == nil {
		if v := policy.CheckAutoReleaseBranch(dst.Spec.Policy, syntax, src.Status.SuccessVersion); !v.Allowed {
			out = append(out, "the target holds it after the tag moves: "+v.Message)
		}
	}
	if policy.ManualRelease(dst.Spec.Policy) {
		out = append(out, "the target's releaseMode is Manual: after the tag moves, run `cvmanager release` to deploy it")
	}
	if dst.Spec.Suspend {
		out = append(out, "the target is suspended: it rolls out once resumed")
	}
	return out
}

// Execute moves the target's tag to the plan's digest, then records the
// promotion in the target's history. The tag is written first: a history
// record of a promotion that did not happen would mislead.
func (p *Promoter) Execute(ctx context.Context, plan *Plan, actor string) (history.Record, error) {
	if err := p.Tagger.AddTags(ctx, plan.Repo, plan.Version, plan.Digest, []string{plan.Tag}); err != nil {
		return history.Record{}, fmt.Errorf("tagging %s@%s as %s: %w", plan.Repo, plan.Digest, plan.Tag, err)
	}
	rec := p.record(plan, actor)
	if err := history.NewStore(p.Kube).Append(ctx, plan.target, rec); err != nil {
		return rec, fmt.Errorf("the tag moved, but recording the promotion failed: %w", err)
	}
	if p.Poll != nil {
		if err := p.Poll(ctx, plan.target.Namespace, plan.target.Name, history.TriggerPromote); err != nil {
			return rec, fmt.Errorf("the tag moved and the promotion is recorded, but asking the controller to poll failed (its next poll finds the move): %w", err)
		}
	}
	return rec, nil
}

// record is the history entry of a promotion's intent.
func (p *Promoter) record(plan *Plan, actor string) history.Record {
	now := p.now()
	dst := plan.target
	from := plan.From.String()
	if plan.FromCluster != "" {
		from = plan.FromCluster + "/" + from
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{string(dst.UID), plan.Digest, from, now.UTC().Format(time.RFC3339Nano)}, "|")))
	return history.Record{
		ID: "promote-" + hex.EncodeToString(sum[:8]), Time: now, Action: history.ActionPromote, Actor: actor,
		From: from, Container: dst.Spec.Container.Name, Strategy: strategyOf(dst),
		FromVersion: plan.TargetVersion, FromDigest: plan.TargetDigest, ToVersion: plan.Version, ToDigest: plan.Digest,
		Outcome: history.OutcomePromoted, Trigger: history.TriggerPromote, CV: dst.Name,
		Reason: fmt.Sprintf("%s@%s tagged %s by %s", plan.Repo, plan.Digest, plan.Tag, actor),
	}
}

func strategyOf(cv *cvv1.ContainerVersion) string {
	if cv.Spec.Strategy.Kind == "" {
		return cvv1.StrategySimple
	}
	return cv.Spec.Strategy.Kind
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
