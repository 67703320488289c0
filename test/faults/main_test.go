// Package faults is the reliability and security suite of issue #10. It runs
// the real `cvmanager` binary (built once per run) against the package's own
// control plane and a real registry, injects faults — kill -9 at named steps
// of a rollout, an apiserver restart, dropped watch connections, a
// competing writer, a second replica taking the lease — and asserts what a
// user depends on: the rollout resumes and finishes once (one patch per
// image change, one history record per rollout), unrelated CVs are not held
// up, bad input is refused with a message a person understands, and no
// planted secret ever appears in logs, Events, status or history.
//
// Every process a test starts is recorded by PID and stopped by that PID.
package faults

import (
	"fmt"
	"os"
	"testing"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/results"
)

// figures are what the fault suite measured besides its verdicts
// (bench/results/<time>-faults), which docs/reliability.md quotes.
var figures = results.New("faults", "Fault-suite figures", "./test/faults")

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	binproc.RemoveBinary()
	if err := figures.Write(); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		code = 1
	}
	os.Exit(code)
}
