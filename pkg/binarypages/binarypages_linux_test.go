package binarypages

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappingsOfTheBinaryOnly(t *testing.T) {
	maps := strings.Join([]string{
		"00400000-02737000 r-xp 00000000 fe:00 10444810   /usr/local/bin/cvmanager",
		"02737000-04dcb000 r--p 02337000 fe:00 10444810   /usr/local/bin/cvmanager",
		"04dcb000-04ecd000 rw-p 049cb000 fe:00 10444810   /usr/local/bin/cvmanager",
		"04ecd000-06f0f000 rw-p 00000000 00:00 0",
		"7f0000000000-7f0000001000 r--p 00000000 fe:00 42   /usr/local/bin/cvmanager-state",
		"garbage",
	}, "\n")
	got := readOnlyMappingsOf(maps, "/usr/local/bin/cvmanager")
	want := []mapping{{0x400000, 0x2737000}, {0x2737000, 0x4dcb000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("mappings = %#v, want %#v", got, want)
	}
}

// TestPageOutReleasesTheBinarysPages runs PageOut on the test binary, whose
// init code has just faulted many of its pages in, and checks the process's
// file-backed resident set shrank.
func TestPageOutReleasesTheBinarysPages(t *testing.T) {
	before := rssFileKiB(t)
	covered, err := PageOut()
	if err != nil {
		t.Fatalf("PageOut: %v", err)
	}
	if covered == 0 {
		t.Fatal("PageOut found no read-only mapping of the test binary")
	}
	after := rssFileKiB(t)
	t.Logf("RssFile %d kB before, %d kB after; %d bytes of mappings covered", before, after, covered)
	if after >= before {
		t.Fatalf("RssFile did not shrink: %d kB before, %d kB after", before, after)
	}
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
