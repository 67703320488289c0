package policy

import (
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

func TestSelect(t *testing.T) {
	tags := []string{"1.2.0", "1.10.0", "1.9.3", "2.0.0", "2.1.0-rc.1", "latest", "main-9", "main-10", "main-x", "v1.11.0"}
	cases := []struct {
		name   string
		policy cvv1.PolicySpec
		want   string
		ok     bool
	}{
		{"semver range picks the newest inside", cvv1.PolicySpec{Selection: cvv1.SelectSemver, SemverRange: ">=1.0.0 <2.0.0"}, "v1.11.0", true},
		{"semver skips pre-releases by default", cvv1.PolicySpec{Selection: cvv1.SelectSemver, SemverRange: ">=2.0.0"}, "2.0.0", true},
		{"semver with pre-releases", cvv1.PolicySpec{Selection: cvv1.SelectSemver, SemverRange: ">=2.0.0", IncludePrerelease: true}, "2.1.0-rc.1", true},
		{"semver with nothing in range", cvv1.PolicySpec{Selection: cvv1.SelectSemver, SemverRange: ">=3"}, "", false},
		{"regex numerical order: 10 after 9", cvv1.PolicySpec{Selection: cvv1.SelectRegex, TagRegex: `main-(\d+)`}, "main-10", true},
		{"regex alphabetical order", cvv1.PolicySpec{Selection: cvv1.SelectRegex, TagRegex: `main-(.+)`, Order: "Alphabetical"}, "main-x", true},
		{"regex is anchored", cvv1.PolicySpec{Selection: cvv1.SelectRegex, TagRegex: `atest`}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := Select(&tc.policy, tags)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || ok != tc.ok {
				t.Errorf("Select = %q,%v; want %q,%v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSelectRejectsBadExpressions(t *testing.T) {
	for _, p := range []cvv1.PolicySpec{
		{Selection: cvv1.SelectSemver, SemverRange: ">=>1"},
		{Selection: cvv1.SelectRegex, TagRegex: "main-(\\d+"},
		{Selection: cvv1.SelectDigest},
	} {
		if _, _, err := Select(&p, []string{"1.0.0"}); err == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
}

func TestCheckAllowed(t *testing.T) {
	cases := []struct {
		allowed, version string
		want             bool
		reason           string
	}{
		{"", "anything", true, ""},
		{"[0-9a-f]{7}", "3f2a9c1", true, ""},
		{"[0-9a-f]{7}", "3f2a9c1-dirty", false, "VersionNotAllowed"},
		{"^release-.*", "release-42", true, ""},
		{">=1.2 <2", "1.5.0", true, ""},
		{">=1.2 <2", "2.0.0", false, "VersionNotAllowed"},
		{"main-(", "main-1", false, "InvalidPolicy"},
	}
	for _, tc := range cases {
		v := CheckAllowed(&cvv1.PolicySpec{AllowedVersions: tc.allowed}, tc.version)
		if v.Allowed != tc.want || v.Reason != tc.reason {
			t.Errorf("CheckAllowed(%q, %q) = %+v; want allowed=%v reason=%q", tc.allowed, tc.version, v, tc.want, tc.reason)
		}
	}
}

func TestRestrictionsCannotBeLoosened(t *testing.T) {
	r, err := ParseRestriction("prod|prod-.*=^master-")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		namespace, version string
		want               bool
	}{
		{"prod", "master-abc", true},
		{"prod", "feature-abc", false},
		{"prod-eu", "feature-abc", false},
		{"preprod", "feature-abc", true}, // namespace expression matches whole names
		{"staging", "feature-abc", true},
	}
	for _, tc := range cases {
		if got := CheckRestrictions([]Restriction{r}, tc.namespace, tc.version).Allowed; got != tc.want {
			t.Errorf("%s %s: allowed=%v want %v", tc.namespace, tc.version, got, tc.want)
		}
	}
	for _, bad := range []string{"prod", "=x", "prod=", "(=x", "p=("} {
		if _, err := ParseRestriction(bad); err == nil {
			t.Errorf("ParseRestriction(%q): want an error", bad)
		}
	}
}

func TestCheckDowngrade(t *testing.T) {
	cases := []struct {
		current, candidate string
		want               bool
	}{
		{"1.2.0", "1.3.0", true},
		{"1.3.0", "1.2.9", false},
		{"v2.0.0", "v10.0.0", true},
		{"3f2a9c1", "0a0a0a0", true}, // git SHAs have no order
		{"", "1.0.0", true},
	}
	for _, tc := range cases {
		if got := CheckDowngrade(tc.current, tc.candidate).Allowed; got != tc.want {
			t.Errorf("CheckDowngrade(%q,%q) = %v, want %v", tc.current, tc.candidate, got, tc.want)
		}
	}
}
