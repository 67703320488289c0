package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// TestBranchPolicyGate: a version of a restricted branch is held even when
// released; one of a branch that is not auto-released waits for a release;
// an auto-released branch rolls out.
func TestBranchPolicyGate(t *testing.T) {
	v1 := pinned("v1", digest1)
	branchPolicy := func(s *cvv1.ContainerVersionSpec) {
		s.VersionSyntax = `(?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})`
		s.Policy = &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}, BranchRestriction: "main|release-.*"}
	}
	held := []string{"update containerversions/status web"}
	rollout := []string{"patch deployments web"} // after the intent; no history is read
	for _, tc := range []struct {
		name       string
		version    string
		released   bool
		wantKube   []string
		wantEvent  []string
		wantReason string // ReleaseBlocked reason when held
	}{
		{"restricted branch is held", "feature-0123456789", false, nil, []string{ReasonReleaseBlocked}, policy.ReasonBranchRestricted},
		{"restricted branch is held even when released", "feature-0123456789", true, nil, []string{ReasonReleaseBlocked}, policy.ReasonBranchRestricted},
		{"other allowed branch waits for a release", "release-1-0123456789", false, nil, []string{ReasonReleaseBlocked}, policy.ReasonBranchNotAutoReleased},
		{"released version of another branch rolls out", "release-1-0123456789", true, rollout, []string{ReasonRolloutStarted}, ""},
		{"auto-released branch rolls out", "main-0123456789", false, rollout, []string{ReasonRolloutStarted}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv := webCV(neverPolled(), branchPolicy)
			if tc.released {
				cv.Annotations = map[string]string{AnnotationRelease: digest2}
			}
			f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: tc.version}, cv, webDeployment(v1, true))
			f.sync("web")
			if diff := cmp.Diff(held, actions(f.cvs)); diff != "" {
				t.Errorf("CV actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantKube, actions(f.kube)); diff != "" {
				t.Errorf("kube actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvent, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			st := f.lastStatus()
			if tc.wantReason == "" {
				if st.Rollout == nil || st.Rollout.Version != tc.version {
					t.Errorf("no rollout of %s: %+v", tc.version, st.Rollout)
				}
				return
			}
			blocked := findCondition(st.Conditions, cvv1.ConditionReleaseBlocked)
			if st.Rollout != nil || st.AvailableDigest != digest2 || blocked == nil || blocked.Reason != tc.wantReason {
				t.Errorf("want %s held with %s, got rollout %v available %s condition %+v", tc.version, tc.wantReason, st.Rollout, st.AvailableDigest, blocked)
			}
		})
	}
}
