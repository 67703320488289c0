package policy

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"cvmanager.dev/cvmanager/pkg/anchored"
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// ExampleVersion builds a version of branch that versionSyntax accepts:
// the branch group holds branch and every other part its shortest form
// ("0000000000" for [0-9a-f]{10}). ok is false when versionSyntax cannot
// carry that branch. `cvmanager policy apply` checks branch policies
// against the controller-wide restrictions with such versions.
func ExampleVersion(versionSyntax *regexp.Regexp, branch string) (string, bool) {
	parsed, err := syntax.Parse(versionSyntax.String(), syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	shortest(parsed, branch, &b)
	version := b.String()
	if got, ok := BranchOf(versionSyntax, version); !ok || got != branch {
		return "", false
	}
	return version, true
}

// shortest writes the shortest string re accepts (approximately: the first
// rune of a class, the first alternative), with branch in the branch group.
func shortest(re *syntax.Regexp, branch string, b *strings.Builder) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		if len(re.Rune) > 0 {
			b.WriteRune(re.Rune[0])
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte('a')
	case syntax.OpCapture:
		if re.Name == BranchGroup {
			b.WriteString(branch)
			return
		}
		shortest(re.Sub[0], branch, b)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			shortest(sub, branch, b)
		}
	case syntax.OpAlternate, syntax.OpPlus:
		shortest(re.Sub[0], branch, b)
	case syntax.OpRepeat:
		for range re.Min {
			shortest(re.Sub[0], branch, b)
		}
	}
}

// ExampleBranches are branches a branchRestriction allows: the shortest
// form of each of its top-level alternatives, e.g. "main" and "release-"
// for main|release-.*.
func ExampleBranches(branchRestriction string) []string {
	re, err := anchored.Compile(branchRestriction)
	if err != nil {
		return nil
	}
	parsed, err := syntax.Parse(branchRestriction, syntax.Perl)
	if err != nil {
		return nil
	}
	for parsed.Op == syntax.OpCapture || (parsed.Op == syntax.OpConcat && len(unanchored(parsed.Sub)) == 1) {
		if parsed.Op == syntax.OpCapture {
			parsed = parsed.Sub[0]
		} else {
			parsed = unanchored(parsed.Sub)[0]
		}
	}
	alternatives := []*syntax.Regexp{parsed}
	if parsed.Op == syntax.OpAlternate {
		alternatives = parsed.Sub
	}
	var out []string
	for _, alt := range alternatives {
		var b strings.Builder
		shortest(alt, "", &b)
		if re.MatchString(b.String()) {
			out = append(out, b.String())
		}
	}
	return out
}

// unanchored drops ^ and $ from a concatenation's parts.
func unanchored(subs []*syntax.Regexp) []*syntax.Regexp {
	var out []*syntax.Regexp
	for _, s := range subs {
		switch s.Op {
		case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine, syntax.OpEndText:
		default:
			out = append(out, s)
		}
	}
	return out
}

// BranchConflicts lists how the branch rules of p conflict with the
// controller-wide restrictions in namespace: an auto-release branch whose
// versions the controller never allows there, or a branch restriction none
// of whose branches would ever be allowed. The check uses ExampleVersion,
// so a restriction on the non-branch part of versions (the SHA) is judged
// by its shortest form.
func BranchConflicts(p *cvv1.PolicySpec, versionSyntax *regexp.Regexp, restrictions []Restriction, namespace string) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, branch := range p.AutoReleaseBranches {
		version, ok := ExampleVersion(versionSyntax, branch)
		if !ok {
			out = append(out, fmt.Sprintf("auto-release branch %q cannot appear in a version: versionSyntax %s does not accept it", branch, versionSyntax))
			continue
		}
		if r, blocked := blockingRestriction(restrictions, namespace, version); blocked {
			out = append(out, fmt.Sprintf("auto-release branch %q conflicts with the controller-wide restriction %s: its versions (e.g. %s) are never allowed in namespace %s",
				branch, r, version, namespace))
		}
	}
	if p.BranchRestriction != "" {
		if c := restrictionConflict(p.BranchRestriction, versionSyntax, restrictions, namespace); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func restrictionConflict(branchRestriction string, versionSyntax *regexp.Regexp, restrictions []Restriction, namespace string) string {
	var tried []string
	var last string
	for _, branch := range ExampleBranches(branchRestriction) {
		version, ok := ExampleVersion(versionSyntax, branch)
		if !ok {
			continue
		}
		r, blocked := blockingRestriction(restrictions, namespace, version)
		if !blocked {
			return ""
		}
		tried, last = append(tried, version), r
	}
	if len(tried) == 0 {
		return ""
	}
	return fmt.Sprintf("branch restriction %s conflicts with the controller-wide restriction %s: the versions of the branches it allows (e.g. %s) are never allowed in namespace %s",
		branchRestriction, last, strings.Join(tried, ", "), namespace)
}

// blockingRestriction is the first restriction refusing version in
// namespace, as "<namespace-regex>=<version-regex>".
func blockingRestriction(restrictions []Restriction, namespace, version string) (string, bool) {
	for _, r := range restrictions {
		if r.Namespace.MatchString(namespace) && !r.Version.MatchString(version) {
			ns := strings.TrimSuffix(strings.TrimPrefix(r.Namespace.String(), "^(?:"), ")$")
			return ns + "=" + r.Version.String(), true
		}
	}
	return "", false
}
