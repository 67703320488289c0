package promote_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/promote"
)

func cv(ns, repo string, st cvv1.ContainerVersionStatus, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	c := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: repo, Tag: "env-" + ns}, Status: st}
	for _, f := range edit {
		f(&c.Spec)
	}
	return c
}

func TestCheckSource(t *testing.T) {
	tests := []struct {
		name string
		st   cvv1.ContainerVersionStatus
		ok   bool
	}{
		{"never succeeded", cvv1.ContainerVersionStatus{CurrVersion: "v1", CurrDigest: "sha256:a", CurrStatus: cvv1.StatusFailed, FailedDigest: "sha256:a"}, false},
		{"first rollout under way", cvv1.ContainerVersionStatus{CurrVersion: "v1", CurrStatus: cvv1.StatusProgressing}, false},
		{"succeeded", cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: "sha256:a", CurrDigest: "sha256:a", CurrStatus: cvv1.StatusSuccess}, true},
		{"newer version failed, last success stands", cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: "sha256:a",
			CurrVersion: "v2", CurrDigest: "sha256:b", CurrStatus: cvv1.StatusFailed, FailedDigest: "sha256:b"}, true},
		{"the last success failed since", cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: "sha256:a",
			CurrVersion: "v1", CurrDigest: "sha256:a", CurrStatus: cvv1.StatusFailed}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := promote.CheckSource(cv("staging", "r/web", tt.st))
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, promote.ErrRefused)) {
				t.Errorf("CheckSource = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCheckTarget(t *testing.T) {
	src := cv("staging", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "1.2.0", SuccessDigest: "sha256:a"})
	prodOnly, err := policy.ParseRestriction("prod=^[0-9]+\\.[0-9]+\\.[0-9]+$")
	if err != nil {
		t.Fatal(err)
	}
	masterOnly, _ := policy.ParseRestriction("prod=^master-")
	tests := []struct {
		name           string
		dst            *cvv1.ContainerVersion
		restrictions   []policy.Restriction
		allowDowngrade bool
		ok             bool
	}{
		{"same repository, newer", cv("prod", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "1.1.0"}), nil, false, true},
		{"another repository", cv("prod", "r/other", cvv1.ContainerVersionStatus{}), nil, false, false},
		{"allowedVersions excludes it", cv("prod", "r/web", cvv1.ContainerVersionStatus{}, func(s *cvv1.ContainerVersionSpec) {
			s.Policy = &cvv1.PolicySpec{AllowedVersions: "^2\\."}
		}), nil, false, false},
		{"controller restriction allows it", cv("prod", "r/web", cvv1.ContainerVersionStatus{}), []policy.Restriction{prodOnly}, false, true},
		{"controller restriction blocks it", cv("prod", "r/web", cvv1.ContainerVersionStatus{}), []policy.Restriction{masterOnly}, false, false},
		{"downgrade", cv("prod", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "1.3.0"}), nil, false, false},
		{"downgrade allowed", cv("prod", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "1.3.0"}), nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := promote.CheckTarget(src, tt.dst, tt.restrictions, tt.allowDowngrade)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, promote.ErrRefused)) {
				t.Errorf("CheckTarget = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// branchSyntax is a versionSyntax naming the branch, as branch policies need.
const branchSyntax = `(?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})`

// TestCheckTargetBranchRestriction: the target's spec.policy.branchRestriction,
// read with the target's versionSyntax, refuses a version its controller
// would never roll out, naming the reason as the controller does; a branch
// it allows, or autoReleaseBranches alone (which only holds a version until
// `cvmanager release`), is accepted.
func TestCheckTargetBranchRestriction(t *testing.T) {
	target := func(syntax string, pol *cvv1.PolicySpec) *cvv1.ContainerVersion {
		return cv("prod", "r/web", cvv1.ContainerVersionStatus{}, func(s *cvv1.ContainerVersionSpec) {
			s.VersionSyntax, s.Policy = syntax, pol
		})
	}
	tests := []struct {
		name    string
		version string
		dst     *cvv1.ContainerVersion
		reason  string // "" = accepted
	}{
		{"no branch policy", "feature-0123456789", target(branchSyntax, nil), ""},
		{"allowed branch", "main-0123456789", target(branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main|release-.*"}), ""},
		{"allowed release branch", "release-2-0123456789", target(branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main|release-.*"}), ""},
		{"other branch", "feature-0123456789", target(branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main|release-.*"}), policy.ReasonBranchRestricted},
		{"restriction is anchored", "mainline-0123456789", target(branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main"}), policy.ReasonBranchRestricted},
		{"version names no branch", "0123456789", target(branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main"}), policy.ReasonBranchRestricted},
		{"versionSyntax without a branch group", "main-0123456789", target("", &cvv1.PolicySpec{BranchRestriction: "main"}), "InvalidPolicy"},
		{"invalid versionSyntax", "main-0123456789", target("(", &cvv1.PolicySpec{BranchRestriction: "main"}), "InvalidPolicy"},
		{"autoReleaseBranches only holds", "feature-0123456789", target(branchSyntax, &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := cv("staging", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: tt.version, SuccessDigest: "sha256:a"})
			err := promote.CheckTarget(src, tt.dst, nil, false)
			if tt.reason == "" {
				if err != nil {
					t.Errorf("CheckTarget = %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, promote.ErrRefused) || !strings.Contains(err.Error(), "prod/web cannot take "+tt.version) ||
				!strings.HasSuffix(err.Error(), "("+tt.reason+")") {
				t.Errorf("CheckTarget = %v, want a refusal of %s with reason %s", err, tt.version, tt.reason)
			}
		})
	}
}

// TestPlanNotesAutoReleaseBranches: a version of a branch the target's
// autoReleaseBranches does not release is planned, with a note that the
// target holds it until `cvmanager release`.
func TestPlanNotesAutoReleaseBranches(t *testing.T) {
	src := cv("staging", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "feature-0123456789", SuccessDigest: "sha256:a"})
	dst := cv("prod", "r/web", cvv1.ContainerVersionStatus{}, func(s *cvv1.ContainerVersionSpec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}}
	})
	p := &promote.Promoter{CVs: cvfake.NewSimpleClientset(src, dst)}
	plan, err := p.Plan(context.Background(), types.NamespacedName{Namespace: "staging", Name: "web"}, types.NamespacedName{Namespace: "prod", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Notes) != 1 || !strings.Contains(plan.Notes[0], "autoReleaseBranches") || !strings.Contains(plan.Notes[0], "cvmanager release") {
		t.Errorf("notes = %q, want one naming autoReleaseBranches and `cvmanager release`", plan.Notes)
	}
}
