package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestCPUBetweenSeesThisProcessSpin burns CPU in the test process and
// checks that the window charges it to the test binary's name.
func TestCPUBetweenSeesThisProcessSpin(t *testing.T) {
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSpace(string(self))
	a := sampleCPU()
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
	}
	u := cpuBetween(a, sampleCPU())
	if u.ByProcess[name] < 0.1 {
		t.Fatalf("%s used %.2f CPU-s in a 300 ms spin; window %s", name, u.ByProcess[name], u)
	}
	if u.BusySeconds < u.ByProcess[name]-0.05 || u.AvailableSeconds < u.WindowSeconds {
		t.Fatalf("machine figures do not hold the process's: %s", u)
	}
}
