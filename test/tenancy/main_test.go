// Package tenancy tests issue 19 on the real control plane: a
// ContainerVersion makes cvmanager do nothing its author could not do
// alone. The real `cvmanager run` binary runs under the Helm chart's RBAC,
// in both modes (a ClusterRole; a Role per watched namespace), with the
// shipped author admission policy installed; CVs are created with the
// tokens of ServiceAccounts that hold exactly the rights each case needs.
//
// Every process a test starts is recorded by PID and stopped by that PID.
package tenancy

import (
	"os"
	"testing"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	binproc.RemoveBinary()
	os.Exit(code)
}
