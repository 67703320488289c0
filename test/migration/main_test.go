// Package migration checks docs/migrating-from-kcd.md row by row: each row
// is a test that does what a user of the original cvmanager does (their
// manifest, their command line, their URL) with the real cvmanager binary,
// built once and executed, against the package's real control plane.
package migration

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
