package policy

import (
	"slices"
	"strings"
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// FuzzParseRestriction feeds arbitrary --policy-version-restriction values:
// the parser must never panic, and what it accepts must keep its promise
// that the namespace expression matches whole names only.
func FuzzParseRestriction(f *testing.F) {
	for _, seed := range []string{"prod=^master-", "prod|staging=^v[0-9]+$", "=x", "x=", "=", "", "a=b=c",
		"(=x", "x=(", `.*=.*`, "prod=", "\xff=\xfe", `(?i)PROD=^rel-`, `a{1000}=b`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRestriction(s)
		if err != nil {
			return
		}
		ns, version, _ := strings.Cut(s, "=")
		if ns == "" || version == "" || r.Namespace == nil || r.Version == nil {
			t.Fatalf("accepted %q with an empty part or nil expression", s)
		}
		if r.Version.String() != version {
			t.Fatalf("version expression %q became %q", version, r.Version)
		}
		// Anchoring: a name that only contains a match must not match. Any
		// string the expression accepts plus a NUL (never in a namespace
		// name, never matched by a literal) must be refused unless the
		// expression itself can match NULs.
		if !strings.ContainsAny(ns, ".\\[^*+") && r.Namespace.MatchString(ns+"\x00") {
			t.Fatalf("namespace expression %q is not anchored", ns)
		}
		_ = CheckRestrictions([]Restriction{r}, ns, version)
	})
}

// FuzzCheckAllowed feeds arbitrary allowedVersions and versions: every
// verdict is either a plain allow or a refusal that says why.
func FuzzCheckAllowed(f *testing.F) {
	for _, seed := range [][2]string{{">=1.0.0 <2.0.0", "1.5.0"}, {"^1.2", "v1.3.4"}, {"main-.*", "main-7"}, {"(", "x"},
		{"~1", "1.0.0-rc.1"}, {"", "anything"}, {"1.x || 3.x", "2.0.0"}, {`[0-9a-f]{7}`, "abc1234"}, {"\xff", "\xff"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, allowed, version string) {
		v := CheckAllowed(&cvv1.PolicySpec{AllowedVersions: allowed}, version)
		assertVerdict(t, v)
		if allowed == "" && !v.Allowed {
			t.Fatalf("empty allowedVersions refused %q", version)
		}
		assertVerdict(t, CheckDowngrade(allowed, version))
	})
}

func assertVerdict(t *testing.T, v Verdict) {
	t.Helper()
	if v.Allowed && (v.Reason != "" || v.Message != "") {
		t.Fatalf("allow with a reason: %+v", v)
	}
	if !v.Allowed && (v.Reason == "" || v.Message == "") {
		t.Fatalf("refusal without a reason or message: %+v", v)
	}
}

// FuzzSelect feeds arbitrary semver ranges, tag regexes and tag lists: the
// choice is always one of the tags offered, and "none" means no tag.
func FuzzSelect(f *testing.F) {
	f.Add(true, ">=1.0.0 <2.0.0", "1.2.0,1.10.0,2.0.0,v1.11.0", false)
	f.Add(true, ">=2.0.0", "2.1.0-rc.1,2.0.0", true)
	f.Add(false, `main-(\d+)`, "main-9,main-10,main-x", false)
	f.Add(false, `(.*)`, ",,", true)
	f.Add(false, `(`, "a", false)
	f.Add(true, "not a range", "1.0.0", false)
	f.Fuzz(func(t *testing.T, semverSelection bool, expr, joined string, flag bool) {
		p := &cvv1.PolicySpec{Selection: cvv1.SelectRegex, TagRegex: expr, Order: "Numerical"}
		if flag {
			p.Order = "Alphabetical"
		}
		if semverSelection {
			p = &cvv1.PolicySpec{Selection: cvv1.SelectSemver, SemverRange: expr, IncludePrerelease: flag}
		}
		tags := strings.Split(joined, ",")
		got, ok, err := Select(p, tags)
		if err != nil && (ok || got != "") {
			t.Fatalf("error %v with a result %q", err, got)
		}
		if (ok && !slices.Contains(tags, got)) || (!ok && got != "") {
			t.Fatalf("Select(%+v, %q) = %q, %v: not one of the tags", p, tags, got, ok)
		}
	})
}
