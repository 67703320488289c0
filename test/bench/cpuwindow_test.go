package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatTakesTheNameWithSpacesAndTheCPUTicks(t *testing.T) {
	// Fields 14 and 15 (utime, stime) after a name holding a space and a parenthesis.
	line := "4242 (kube (ctl) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	name, ticks, ok := parseStat(line)
	if !ok || name != "kube (ctl) x" || ticks != 325 {
		t.Fatalf("parseStat = %q, %d, %v; want %q, 325, true", name, ticks, ok, "kube (ctl) x")
	}
	if _, _, ok := parseStat("4242 (short) S 1"); ok {
		t.Fatal("a truncated line parsed")
	}
}

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
