package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/discovery"
	"k8s.io/klog/v2"
)

// MinKubernetesMinor is the oldest Kubernetes release (1.x) cvmanager
// supports: 1.30 made ValidatingAdmissionPolicy v1, which guards who a CV
// names as its author (deploy/ and the chart ship one). README and
// docs/getting-started.md state it.
const MinKubernetesMinor = 30

// checkKubernetesVersion fails fast, with the version found and the one
// needed, when the API server is older than 1.30.
func checkKubernetesVersion(ctx context.Context, d discovery.ServerVersionInterface) error {
	info, err := d.ServerVersion()
	if err != nil {
		return fmt.Errorf("cannot read the Kubernetes version from the API server: %w", err)
	}
	major, _ := strconv.Atoi(strings.TrimRight(info.Major, "+"))
	minor, _ := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	if major < 1 || (major == 1 && minor < MinKubernetesMinor) {
		return fmt.Errorf("the API server runs Kubernetes %s; cvmanager needs 1.%d or newer "+
			"(ValidatingAdmissionPolicy v1 guards ContainerVersion authorship)", info.GitVersion, MinKubernetesMinor)
	}
	klog.FromContext(ctx).Info("Kubernetes API server", "version", info.GitVersion)
	return nil
}

// mutatingPolicyVersions are the API versions that may serve
// MutatingAdmissionPolicy, newest first.
var mutatingPolicyVersions = []string{"admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1"}

// logAuthorStamping says at start whether the API server can stamp
// cvmanager.dev/author itself (MutatingAdmissionPolicy, deploy/author-stamp/)
// or whether every CV must carry it (`cvmanager cv stamp`). Only a log
// line: the policies decide, and the controller reads the annotation
// either way.
func logAuthorStamping(ctx context.Context, d discovery.ServerResourcesInterface) {
	logger := klog.FromContext(ctx)
	for _, gv := range mutatingPolicyVersions {
		list, err := d.ServerResourcesForGroupVersion(gv)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == "mutatingadmissionpolicies" {
				logger.Info("MutatingAdmissionPolicy is served: the API server can stamp cvmanager.dev/author "+
					"(deploy/author-stamp/, the chart's authorPolicy.stamp)", "apiVersion", gv)
				return
			}
		}
	}
	logger.Info("MutatingAdmissionPolicy is not served: every ContainerVersion must carry cvmanager.dev/author " +
		"(`cvmanager cv stamp`); see docs/security.md")
}
