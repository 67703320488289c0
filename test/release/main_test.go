// Package release tests the release-management commands end to end: promotion
// against a real registry, status by service, and state export/import
// between two real control planes, on local and S3 backends.
package release

import (
	"bytes"
	"os"
	"testing"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/test/controlplane"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	stopSecond()
	os.Exit(code)
}

// runCLI runs cvmanager as a user would, in-process.
func runCLI(args ...string) (string, error) {
	root := cli.NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
