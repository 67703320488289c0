package promote_test

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
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
