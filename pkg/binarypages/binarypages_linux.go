// Package binarypages hands back to the kernel the pages of the cvmanager
// binary that only startup read.
//
// The binary is large (every registry's SDK, git, signatures) and a running
// controller executes a small part of it. Package init functions are spread
// over the whole text and read-only data, and each page they touch faults in
// with its neighbours (fault-around, large page-cache folios), so once
// startup is over most of the binary is resident although little of it runs
// again. Those pages count in VmRSS and in the container's memory charge.
// PageOut asks the kernel to reclaim them (MADV_PAGEOUT, Linux 5.4), much
// as the kernel frees its own init memory after boot; pages the controller
// still uses fault back in on their next use, from the page cache or the
// disk. From then on the mappings are read without readahead
// (MADV_RANDOM), so a page that faults back brings in itself, not the
// large folio of its neighbours that the process never runs.
package binarypages

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// PageOut asks the kernel to reclaim the running executable's read-only
// pages (text and read-only data) that this process maps, turns readahead
// off for them, and returns how many bytes of mappings it covered. The
// kernel's page-out skips pages another process also maps (a second
// replica on the node; not exercised by the tests). Nothing the program
// can observe changes but page faults, so callers may ignore the error (a
// kernel older than 5.4 answers EINVAL).
func PageOut() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	covered := 0
	for _, m := range readOnlyMappingsOf(string(maps), exe) {
		// A raw syscall: the range is the binary's own mapping, which
		// unix.Madvise would want as a []byte made from a uintptr.
		for _, advice := range []uintptr{unix.MADV_PAGEOUT, unix.MADV_RANDOM} {
			if _, _, errno := syscall.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, advice); errno != 0 {
				return covered, errno
			}
		}
		covered += int(m.end - m.start)
	}
	return covered, nil
}

type mapping struct{ start, end uintptr }

// readOnlyMappingsOf returns the mappings of path in a /proc/self/maps
// listing that cannot be written (text and read-only data). The writable
// data segment is left alone: its written pages are the process's own.
func readOnlyMappingsOf(maps, path string) []mapping {
	var out []mapping
	for _, line := range strings.Split(maps, "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != path || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && end > start {
			out = append(out, mapping{uintptr(start), uintptr(end)})
		}
	}
	return out
}
