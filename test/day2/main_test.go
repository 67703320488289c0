// Package day2 measures what a platform team meets on day 2, on the real
// control plane with a real registry and the real binaries, and writes the
// figures to bench/results/<time>-day2.{json,md}:
//
//   - the size of the controller binary and of cvmanager-state, built as
//     the Dockerfile builds them;
//   - the controller's RSS idle and at 20 apps (20 Deployments over 5
//     repositories, 10 s polls: the set Keel was measured on);
//   - SIGTERM handover and kill -9 takeover between two replicas with the
//     shipped Lease settings, each until the successor acted on a trigger
//     accepted just before the leader went away.
//
// Run one test with -run to refresh part of the figures; every run writes
// the figures it measured, with the time and the machine.
package day2

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/results"
)

// figures is everything the run measured (bench/results/<time>-day2).
var figures = results.New("day2", "Day-2 figures", "./test/day2")

// binDir holds the binaries built as shipped, for the whole run.
var binDir string

// record adds a figure; limit > 0 is an upper bound it should stay under.
func record(t *testing.T, name string, value float64, unit string, limit float64, what string) {
	figures.Record(t, name, value, unit, limit, what)
}

func note(format string, args ...any) { figures.Note(format, args...) }

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "cvmanager-day2-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every process runs the shipped build, which TestFootprint (or the
	// first test that starts a process) builds here.
	os.Setenv(binproc.EnvBinary, filepath.Join(binDir, "cvmanager"))
	code := controlplane.RunMain(m, controlplane.Options{})
	_ = os.RemoveAll(binDir)
	binproc.RemoveBinary()
	if err := figures.Write(); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		code = 1
	}
	os.Exit(code)
}
