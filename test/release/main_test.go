// Package release tests the release-management commands end to end: promotion
// against a real registry, status by service, and state export/import
// between two real control planes, on local and S3 backends.
package release

import (
	"os"
	"testing"

	"cvmanager.dev/cvmanager/test/controlplane"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	stopSecond()
	os.Exit(code)
}
