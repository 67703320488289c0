// Package policy decides which versions a ContainerVersion may deploy. Every
// rule is a small pure function over the spec and a version string, so the
// controller can chain them (cert-manager style) and tests can table them.
//
// Rules, in the order the controller applies them:
//
//  1. Selection: follow the tag's digest (default), or pick the newest tag by
//     semver range, or the greatest tag matching a regex.
//  2. Global restrictions (controller flags) that no CV can loosen.
//  3. spec.policy.allowedVersions.
//  4. spec.policy.branchRestriction on the versionSyntax branch group.
//  5. No downgrade without an explicit release request (semver versions).
//  6. spec.policy.autoReleaseBranches holds versions of other branches
//     until released.
//  7. releaseMode Manual holds every new version until released.
package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"cvmanager.dev/cvmanager/pkg/anchored"
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Verdict says whether a version may be deployed now.
type Verdict struct {
	Allowed bool
	// Reason is CamelCase for conditions; Message is for people.
	Reason  string
	Message string
}

func allow() Verdict { return Verdict{Allowed: true} }

func block(reason, format string, args ...any) Verdict {
	return Verdict{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Restriction is a controller-wide rule: versions deployed in namespaces
// matching Namespace must match Version. Set with
// --policy-version-restriction <namespace-regex>=<version-regex>.
type Restriction struct {
	Namespace *regexp.Regexp
	Version   *regexp.Regexp
}

// ParseRestrictions parses each of specs with ParseRestriction.
func ParseRestrictions(specs []string) ([]Restriction, error) {
	var restrictions []Restriction
	for _, spec := range specs {
		r, err := ParseRestriction(spec)
		if err != nil {
			return nil, err
		}
		restrictions = append(restrictions, r)
	}
	return restrictions, nil
}

// ParseRestriction parses "prod=^master-". The namespace expression must
// match the whole namespace name ("prod" does not match "preprod"); the
// version expression is used as written, so "^master-" is a prefix rule.
func ParseRestriction(s string) (Restriction, error) {
	ns, version, ok := strings.Cut(s, "=")
	if !ok || ns == "" || version == "" {
		return Restriction{}, fmt.Errorf("version restriction %q: want <namespace-regex>=<version-regex>", s)
	}
	nsRe, err := anchored.Compile(ns)
	if err != nil {
		return Restriction{}, fmt.Errorf("version restriction %q: namespace: %w", s, err)
	}
	vRe, err := regexp.Compile(version)
	if err != nil {
		return Restriction{}, fmt.Errorf("version restriction %q: version: %w", s, err)
	}
	return Restriction{Namespace: nsRe, Version: vRe}, nil
}

// CheckRestrictions applies the global restrictions for a namespace.
func CheckRestrictions(restrictions []Restriction, namespace, version string) Verdict {
	for _, r := range restrictions {
		if r.Namespace.MatchString(namespace) && !r.Version.MatchString(version) {
			return block("RestrictedByController", "version %q is not allowed in namespace %s by the controller's restriction %s",
				version, namespace, r.Version)
		}
	}
	return allow()
}

// CheckAllowed applies spec.policy.allowedVersions: an anchored regex, or a
// semver range when it parses as one and the version is semver.
func CheckAllowed(p *cvv1.PolicySpec, version string) Verdict {
	if p == nil || p.AllowedVersions == "" {
		return allow()
	}
	if c, err := semver.NewConstraint(p.AllowedVersions); err == nil {
		if v, err := semver.NewVersion(version); err == nil {
			if c.Check(v) {
				return allow()
			}
			return block("VersionNotAllowed", "version %s is outside allowedVersions %s", version, p.AllowedVersions)
		}
	}
	re, err := anchored.Compile(p.AllowedVersions)
	if err != nil {
		return block("InvalidPolicy", "policy.allowedVersions %q is neither a semver range nor a valid regular expression: %v", p.AllowedVersions, err)
	}
	if !re.MatchString(version) {
		return block("VersionNotAllowed", "version %s does not match allowedVersions %s", version, p.AllowedVersions)
	}
	return allow()
}

// CheckDowngrade refuses to go from a higher semver version to a lower one.
// Versions that are not semver (git SHAs) have no order and always pass.
func CheckDowngrade(current, candidate string) Verdict {
	cur, err1 := semver.NewVersion(current)
	next, err2 := semver.NewVersion(candidate)
	if err1 != nil || err2 != nil || !next.LessThan(cur) {
		return allow()
	}
	return block("Downgrade", "version %s is older than the deployed %s; release it explicitly to downgrade", candidate, current)
}

// ManualRelease reports whether new versions wait for an explicit release.
func ManualRelease(p *cvv1.PolicySpec) bool {
	return p != nil && p.ReleaseMode == "Manual"
}

// Select picks the version tag among tags for Semver and Regex selection.
// ok is false when no tag qualifies; Digest selection never calls it.
func Select(p *cvv1.PolicySpec, tags []string) (string, bool, error) {
	switch {
	case p == nil || p.Selection == "" || p.Selection == cvv1.SelectDigest:
		return "", false, fmt.Errorf("policy selects by digest, not among tags")
	case p.Selection == cvv1.SelectSemver:
		return selectSemver(p, tags)
	default:
		return selectRegex(p, tags)
	}
}

func selectSemver(p *cvv1.PolicySpec, tags []string) (string, bool, error) {
	c, err := semver.NewConstraint(p.SemverRange)
	if err != nil {
		return "", false, fmt.Errorf("policy.semverRange %q: %v", p.SemverRange, err)
	}
	var best *semver.Version
	bestTag := ""
	for _, tag := range tags {
		v, err := semver.NewVersion(tag)
		if err != nil || (v.Prerelease() != "" && !p.IncludePrerelease) {
			continue
		}
		if !checkIncludingPrerelease(c, v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, tag
		}
	}
	return bestTag, best != nil, nil
}

// checkIncludingPrerelease lets a pre-release satisfy a range when the user
// asked for pre-releases; the library otherwise only admits them when the
// range itself names one.
func checkIncludingPrerelease(c *semver.Constraints, v *semver.Version) bool {
	if c.Check(v) {
		return true
	}
	if v.Prerelease() == "" {
		return false
	}
	release, err := v.SetPrerelease("")
	return err == nil && c.Check(&release)
}

func selectRegex(p *cvv1.PolicySpec, tags []string) (string, bool, error) {
	re, err := anchored.Compile(p.TagRegex)
	if err != nil {
		return "", false, fmt.Errorf("policy.tagRegex %q: %v", p.TagRegex, err)
	}
	type candidate struct{ tag, key string }
	var candidates []candidate
	for _, tag := range tags {
		m := re.FindStringSubmatch(tag)
		if m == nil {
			continue
		}
		key := tag
		if len(m) > 1 {
			key = m[1]
		}
		candidates = append(candidates, candidate{tag, key})
	}
	if len(candidates) == 0 {
		return "", false, nil
	}
	numerical := p.Order != "Alphabetical"
	sort.SliceStable(candidates, func(i, j int) bool {
		return less(candidates[i].key, candidates[j].key, numerical)
	})
	return candidates[len(candidates)-1].tag, true, nil
}

// less orders keys numerically when both parse as integers (so "10" > "9"),
// and alphabetically otherwise.
func less(a, b string, numerical bool) bool {
	if numerical {
		x, errA := strconv.ParseInt(a, 10, 64)
		y, errB := strconv.ParseInt(b, 10, 64)
		if errA == nil && errB == nil {
			return x < y
		}
	}
	return a < b
}
