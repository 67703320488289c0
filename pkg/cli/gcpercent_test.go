package cli

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestRunLowersGOGCWhenUnset(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "") // restored after the test
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	tuneGC()
	if got := debug.SetGCPercent(100); got != runGCPercent {
		t.Errorf("GC percent %d, want %d", got, runGCPercent)
	}
}

func TestRunKeepsTheOperatorsGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(200)) // as the runtime would have read GOGC=200
	t.Setenv("GOGC", "200")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 200 {
		t.Errorf("GC percent %d, want the operator's 200", got)
	}
}
