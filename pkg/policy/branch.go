package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"cvmanager.dev/cvmanager/pkg/anchored"
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// BranchGroup is the name of the versionSyntax group that holds a
// version's branch, e.g. (?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10}).
const BranchGroup = "branch"

// Reasons of the branch rules, for conditions and Events.
const (
	ReasonBranchRestricted      = "BranchRestricted"
	ReasonBranchNotAutoReleased = "BranchNotAutoReleased"
)

// HasBranchGroup reports whether a compiled versionSyntax names a branch.
func HasBranchGroup(syntax *regexp.Regexp) bool {
	return syntax != nil && syntax.SubexpIndex(BranchGroup) >= 0
}

// BranchOf is the branch a version was built from, read from the branch
// group of versionSyntax; ok is false when the version does not match or
// the syntax has no branch group.
func BranchOf(syntax *regexp.Regexp, version string) (branch string, ok bool) {
	if !HasBranchGroup(syntax) {
		return "", false
	}
	m := syntax.FindStringSubmatch(version)
	if m == nil {
		return "", false
	}
	return m[syntax.SubexpIndex(BranchGroup)], true
}

// usesBranches reports whether the policy has a branch rule.
func usesBranches(p *cvv1.PolicySpec) bool {
	return p != nil && (len(p.AutoReleaseBranches) > 0 || p.BranchRestriction != "")
}

// CheckBranchRestriction applies spec.policy.branchRestriction. No release
// overrides it: a version of another branch is never rolled out.
func CheckBranchRestriction(p *cvv1.PolicySpec, syntax *regexp.Regexp, version string) Verdict {
	if !usesBranches(p) {
		return allow()
	}
	if !HasBranchGroup(syntax) {
		return block("InvalidPolicy", "the branch policy needs a versionSyntax with a named group %q; version %s is held", BranchGroup, version)
	}
	if p.BranchRestriction == "" {
		return allow()
	}
	branch, ok := BranchOf(syntax, version)
	if !ok {
		return block(ReasonBranchRestricted, "version %s names no branch (it does not match versionSyntax %s), so policy.branchRestriction %s holds it",
			version, syntax, p.BranchRestriction)
	}
	re, err := anchored.Compile(p.BranchRestriction)
	if err != nil {
		return block("InvalidPolicy", "policy.branchRestriction %q is not a valid regular expression: %v", p.BranchRestriction, err)
	}
	if !re.MatchString(branch) {
		return block(ReasonBranchRestricted, "version %s is of branch %s, which policy.branchRestriction %s does not allow: it is never rolled out",
			version, branch, p.BranchRestriction)
	}
	return allow()
}

// CheckAutoReleaseBranch applies spec.policy.autoReleaseBranches: versions
// of other branches wait for `cvmanager release`.
func CheckAutoReleaseBranch(p *cvv1.PolicySpec, syntax *regexp.Regexp, version string) Verdict {
	if p == nil || len(p.AutoReleaseBranches) == 0 {
		return allow()
	}
	branch, ok := BranchOf(syntax, version)
	if ok && slices.Contains(p.AutoReleaseBranches, branch) {
		return allow()
	}
	if !ok {
		branch = "(none)"
	}
	return block(ReasonBranchNotAutoReleased, "version %s is of branch %s; policy.autoReleaseBranches releases only %s: run `cvmanager release` to deploy it",
		version, branch, strings.Join(p.AutoReleaseBranches, ", "))
}

// Candidate is a version tag of a branch with its image's creation time.
type Candidate struct {
	Tag     string
	Created time.Time
	// Index is the tag's position in the registry's tag list.
	Index int
}

// BranchTags picks the tags of branch from a registry's tag list, keeping
// their list positions for NewestCandidate's tie-break.
func BranchTags(syntax *regexp.Regexp, tags []string, branch string) []Candidate {
	var out []Candidate
	for i, tag := range tags {
		if b, ok := BranchOf(syntax, tag); ok && b == branch {
			out = append(out, Candidate{Tag: tag, Index: i})
		}
	}
	return out
}

// NewestCandidate is the candidate whose image was created last; images
// created at the same time (or without a creation time) are ordered by
// their tag's position in the registry's list, the later one winning.
func NewestCandidate(candidates []Candidate) (Candidate, error) {
	if len(candidates) == 0 {
		return Candidate{}, fmt.Errorf("no candidates")
	}
	return slices.MaxFunc(candidates, func(a, b Candidate) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return a.Index - b.Index
	}), nil
}
