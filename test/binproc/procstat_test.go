package binproc

import (
	"os"
	"testing"
)

func TestParseStatTakesTheNameWithSpacesTheCPUTicksAndTheFaults(t *testing.T) {
	// Field 12 (majflt) and fields 14 and 15 (utime, stime) after a name
	// holding a space and a parenthesis.
	line := "4242 (kube (ctl) x) S 1 4242 4242 0 -1 4194560 100 0 7 0 250 75 0 0 20 0 12 0 100 0 0"
	s, ok := ParseStat(line)
	if want := (Stat{Name: "kube (ctl) x", CPUTicks: 325, MajorFaults: 7}); !ok || s != want {
		t.Fatalf("ParseStat = %+v, %v; want %+v", s, ok, want)
	}
	if _, ok := ParseStat("4242 (short) S 1"); ok {
		t.Fatal("a truncated line parsed")
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	s, err := ReadStat(os.Getpid())
	if err != nil || s.Name == "" {
		t.Fatalf("ReadStat(self) = %+v, %v", s, err)
	}
}
