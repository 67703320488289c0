package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// TestEnforced: a CV's Audit mode never weakens a controller-wide
// requirement.
func TestEnforced(t *testing.T) {
	cases := []struct {
		name    string
		require bool
		spec    *cvv1.SignaturePolicy
		want    bool
	}{
		{name: "controller requires, CV silent", require: true, want: true},
		{name: "controller requires, CV Audit", require: true, spec: &cvv1.SignaturePolicy{Mode: cvv1.VerifyAudit}, want: true},
		{name: "CV Enforce", spec: &cvv1.SignaturePolicy{Mode: cvv1.VerifyEnforce}, want: true},
		{name: "CV mode defaulted", spec: &cvv1.SignaturePolicy{}, want: true},
		{name: "CV Audit alone", spec: &cvv1.SignaturePolicy{Mode: cvv1.VerifyAudit}, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, enforced(tc.require, tc.spec)); diff != "" {
				t.Errorf("enforced (-want +got):\n%s", diff)
			}
		})
	}
}
