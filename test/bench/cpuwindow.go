package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"cvmanager.dev/cvmanager/test/binproc"
)

// cpuSample is the CPU time used so far by each process name and by the
// machine, to tell who used a window's CPU: the burst's finish waits on
// the control plane, which shares two cores with cvmanager and the bench.
type cpuSample struct {
	at     time.Time
	byName map[string]float64 // seconds, processes of one name summed
	busy   float64            // seconds the machine's CPUs were not idle
}

// sampleCPU reads /proc/<pid>/stat of every process and /proc/stat.
func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), byName: map[string]float64{}}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		if name, secs, ok := processCPU(path); ok {
			s.byName[name] += secs
		}
	}
	s.busy = machineBusy()
	return s
}

// processCPU reads a /proc/<pid>/stat file: the process's name and its
// CPU time in seconds.
func processCPU(path string) (string, float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	st, ok := binproc.ParseStat(string(b))
	return st.Name, float64(st.CPUTicks) / clockTicks, ok
}

// machineBusy is the CPU time the machine spent not idle (nor waiting for
// I/O), summed over its CPUs, from /proc/stat's first line.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(first)
	total, idle := 0.0, 0.0
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return (total - idle) / clockTicks
}

// cpuUse is the CPU a window used: the machine's busy seconds against the
// seconds its CPUs had, and the busiest process names.
type cpuUse struct {
	WindowSeconds    float64            `json:"windowSeconds"`
	AvailableSeconds float64            `json:"availableSeconds"`
	BusySeconds      float64            `json:"busySeconds"`
	ByProcess        map[string]float64 `json:"byProcess"`
}

// cpuBusiest is how many process names cpuUse keeps.
const cpuBusiest = 7

func cpuBetween(a, b cpuSample) cpuUse {
	window := b.at.Sub(a.at).Seconds()
	u := cpuUse{WindowSeconds: window, AvailableSeconds: window * float64(runtime.NumCPU()),
		BusySeconds: b.busy - a.busy, ByProcess: map[string]float64{}}
	type used struct {
		name string
		secs float64
	}
	var all []used
	for name, secs := range b.byName {
		if d := secs - a.byName[name]; d > 0 {
			all = append(all, used{name, d})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].secs > all[j].secs })
	for _, x := range all[:min(len(all), cpuBusiest)] {
		u.ByProcess[x.name] = x.secs
	}
	return u
}

// String renders the use as "machine busy 24.0 of 26.2 CPU-s (92%): kube-apiserver 10.1, ...".
func (u cpuUse) String() string {
	if u.AvailableSeconds <= 0 {
		return ""
	}
	names := make([]string, 0, len(u.ByProcess))
	for n := range u.ByProcess {
		names = append(names, n)
	}
	// Busiest first; equal times by name, so a recorded run renders the
	// same every time (two processes at 0.23 CPU-s swapped places).
	sort.Slice(names, func(i, j int) bool {
		if a, b := u.ByProcess[names[i]], u.ByProcess[names[j]]; a != b {
			return a > b
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f", n, u.ByProcess[n])
	}
	return fmt.Sprintf("machine busy %.1f of %.1f CPU-s (%.0f%%) over %.1f s; by process (CPU-s): %s",
		u.BusySeconds, u.AvailableSeconds, 100*u.BusySeconds/u.AvailableSeconds, u.WindowSeconds, strings.Join(parts, ", "))
}
