// Package authorstamp tests the MutatingAdmissionPolicy that stamps
// cvmanager.dev/author (deploy/author-stamp/) on a real control plane that
// serves the beta API (Kubernetes 1.34 with the feature gate on): a plain
// `kubectl apply` of the README's example, by an impersonated GitOps
// account, is stamped and rolled out by the real controller; a forged
// author is still refused by the guard; before the policy is installed
// the behaviour is today's (refused unless stamped).
package authorstamp

import (
	"os"
	"testing"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{APIServerFlags: []string{
		"--feature-gates=MutatingAdmissionPolicy=true",
		"--runtime-config=admissionregistration.k8s.io/v1beta1=true",
	}})
	binproc.RemoveBinary()
	os.Exit(code)
}
