package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/pkg/anchored"
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

const branchSyntax = `(?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})`

func TestBranchOf(t *testing.T) {
	syntax, err := anchored.Compile(branchSyntax)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := anchored.Compile(cvv1.DefaultVersionSyntax)
	cases := []struct {
		syntax  string
		version string
		branch  string
		ok      bool
	}{
		{branchSyntax, "main-0123456789", "main", true},
		{branchSyntax, "feature-x-0123456789", "feature-x", true},
		{branchSyntax, "release-1-2-abcdefabcd", "release-1-2", true},
		{branchSyntax, "main-0123", "", false},       // sha too short
		{branchSyntax, "Main-0123456789", "", false}, // upper case is no branch
		{"default", "0123456789", "", false},         // no branch group
	}
	for _, tc := range cases {
		re := syntax
		if tc.syntax == "default" {
			re = plain
		}
		branch, ok := BranchOf(re, tc.version)
		if diff := cmp.Diff([]any{tc.branch, tc.ok}, []any{branch, ok}); diff != "" {
			t.Errorf("BranchOf(%s) (-want +got):\n%s", tc.version, diff)
		}
	}
}

func TestBranchChecks(t *testing.T) {
	syntax, _ := anchored.Compile(branchSyntax)
	plain, _ := anchored.Compile(cvv1.DefaultVersionSyntax)
	both := &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}, BranchRestriction: "main|release-.*"}
	cases := []struct {
		name        string
		policy      *cvv1.PolicySpec
		plainSyntax bool
		version     string
		restriction string // want reason, "" = allowed
		autoRelease string
	}{
		{"no policy", nil, false, "feature-0123456789", "", ""},
		{"main is released", both, false, "main-0123456789", "", ""},
		{"release branch is held", both, false, "release-2-0123456789", "", ReasonBranchNotAutoReleased},
		{"feature is restricted", both, false, "feature-0123456789", ReasonBranchRestricted, ReasonBranchNotAutoReleased},
		{"restriction is anchored", both, false, "mainline-0123456789", ReasonBranchRestricted, ReasonBranchNotAutoReleased},
		{"no branch in version", both, false, "0123456789", ReasonBranchRestricted, ReasonBranchNotAutoReleased},
		{"no branch group", both, true, "0123456789", "InvalidPolicy", ReasonBranchNotAutoReleased},
		{"auto-release only", &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}}, false, "feature-0123456789", "", ReasonBranchNotAutoReleased},
	}
	for _, tc := range cases {
		re := syntax
		if tc.plainSyntax {
			re = plain
		}
		got := []string{CheckBranchRestriction(tc.policy, re, tc.version).Reason, CheckAutoReleaseBranch(tc.policy, re, tc.version).Reason}
		if diff := cmp.Diff([]string{tc.restriction, tc.autoRelease}, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestNewestCandidate(t *testing.T) {
	syntax, _ := anchored.Compile(branchSyntax)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tags := []string{"feature-aaaaaaaaaa", "main-1111111111", "main-2222222222", "main-3333333333", "env-prod"}
	cases := []struct {
		name    string
		created map[string]time.Time
		want    string
	}{
		{"created wins over tag order", map[string]time.Time{"main-1111111111": t0.Add(2 * time.Hour), "main-2222222222": t0, "main-3333333333": t0.Add(time.Hour)}, "main-1111111111"},
		{"tie broken by tag order", map[string]time.Time{"main-1111111111": t0, "main-2222222222": t0.Add(time.Hour), "main-3333333333": t0.Add(time.Hour)}, "main-3333333333"},
		{"no created times", map[string]time.Time{}, "main-3333333333"},
	}
	for _, tc := range cases {
		candidates := BranchTags(syntax, tags, "main")
		for i := range candidates {
			candidates[i].Created = tc.created[candidates[i].Tag]
		}
		got, err := NewestCandidate(candidates)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got.Tag); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if got := BranchTags(syntax, tags, "feature"); len(got) != 1 || got[0].Index != 0 {
		t.Errorf("feature tags: %+v", got)
	}
	if _, err := NewestCandidate(nil); err == nil {
		t.Error("no candidates gave no error")
	}
}

func TestExampleVersionsAndConflicts(t *testing.T) {
	syntax, _ := anchored.Compile(branchSyntax)
	if diff := cmp.Diff([]string{"main", "release-"}, ExampleBranches("^(main|release-.*)$")); diff != "" {
		t.Errorf("ExampleBranches (-want +got):\n%s", diff)
	}
	if got, ok := ExampleVersion(syntax, "main"); !ok || got != "main-0000000000" {
		t.Errorf("ExampleVersion(main) = %q, %t", got, ok)
	}
	if _, ok := ExampleVersion(syntax, "Main"); ok {
		t.Error("versionSyntax cannot carry upper case, yet an example was made")
	}
	mainOnly, _ := ParseRestriction("prod=^main-")
	cases := []struct {
		name   string
		policy *cvv1.PolicySpec
		ns     string
		want   int
	}{
		{"auto-release main allowed", &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}}, "prod", 0},
		{"auto-release feature refused", &cvv1.PolicySpec{AutoReleaseBranches: []string{"feature"}}, "prod", 1},
		{"other namespace unrestricted", &cvv1.PolicySpec{AutoReleaseBranches: []string{"feature"}}, "dev", 0},
		{"restriction with one allowed branch", &cvv1.PolicySpec{BranchRestriction: "main|release-.*"}, "prod", 0},
		{"restriction with no allowed branch", &cvv1.PolicySpec{BranchRestriction: "release-.*|hotfix"}, "prod", 1},
		{"branch the syntax cannot carry", &cvv1.PolicySpec{AutoReleaseBranches: []string{"UPPER"}}, "dev", 1},
	}
	for _, tc := range cases {
		got := BranchConflicts(tc.policy, syntax, []Restriction{mainOnly}, tc.ns)
		if len(got) != tc.want {
			t.Errorf("%s: conflicts %q, want %d", tc.name, got, tc.want)
		}
	}
}
