package binproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is what the suites read from /proc/<pid>/stat.
type Stat struct {
	Name string
	// CPUTicks is utime + stime, in clock ticks.
	CPUTicks uint64
	// MajorFaults counts the pages the process had to read from the disk
	// (majflt): the binary's pages handed back come back this way.
	MajorFaults uint64
}

// ParseStat reads a /proc/<pid>/stat line. The name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func ParseStat(line string) (Stat, bool) {
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return Stat{}, false
	}
	f := strings.Fields(line[closing+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return Stat{}, false
	}
	majflt, err1 := strconv.ParseUint(f[9], 10, 64)
	utime, err2 := strconv.ParseUint(f[11], 10, 64)
	stime, err3 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Stat{}, false
	}
	return Stat{Name: line[open+1 : closing], CPUTicks: utime + stime, MajorFaults: majflt}, true
}

// ReadStat reads and parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	s, ok := ParseStat(string(b))
	if !ok {
		return Stat{}, fmt.Errorf("/proc/%d/stat: cannot parse %q", pid, b)
	}
	return s, nil
}
