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
