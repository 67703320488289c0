// Package release tests the release-management commands end to end: promotion
// against a real registry, status by service, and state export/import
// between two real control planes, on local and S3 backends.
package release

import (
	"fmt"
	"os"
	"testing"

	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/results"
)

// figures are the state commands' times TestExportImport1500CVs measured
// (bench/results/<time>-state), which docs/state.md quotes.
var figures = results.New("state", "State export and import", "./test/release")

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	stopSecond()
	if err := figures.Write(); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		code = 1
	}
	os.Exit(code)
}
