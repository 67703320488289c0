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
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// report is everything the run measured, by name; each figure carries its
// unit and, where there is one, its target.
type report struct {
	mu      sync.Mutex
	Started time.Time         `json:"started"`
	Machine map[string]string `json:"machine"`
	Figures map[string]figure `json:"figures"`
	Notes   []string          `json:"notes,omitempty"`
}

type figure struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	// Met is nil when the figure has no target.
	Met  *bool  `json:"met,omitempty"`
	What string `json:"what"`
}

var results = &report{Figures: map[string]figure{}}

// binDir holds the binaries built as shipped, for the whole run.
var binDir string

// record adds a figure; limit > 0 is an upper bound it should stay under.
func record(t *testing.T, name string, value float64, unit string, limit float64, what string) {
	results.mu.Lock()
	defer results.mu.Unlock()
	f := figure{Value: value, Unit: unit, What: what}
	if limit > 0 {
		met := value <= limit
		f.Target, f.Met = fmt.Sprintf("<= %g %s", limit, unit), &met
	}
	results.Figures[name] = f
	t.Logf("MEASURE %s = %.2f %s %s", name, value, unit, f.Target)
}

func note(format string, args ...any) {
	results.mu.Lock()
	defer results.mu.Unlock()
	results.Notes = append(results.Notes, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	results.Started = time.Now().UTC()
	host, _ := os.Hostname()
	results.Machine = map[string]string{"host": host, "cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(),
		"os": runtime.GOOS + "/" + runtime.GOARCH}
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
	if len(results.Figures) > 0 {
		if err := writeResults(); err != nil {
			fmt.Fprintln(os.Stderr, "writing results:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// writeResults writes bench/results/<time>-day2.json and .md.
func writeResults() error {
	base := filepath.Join(kubetest.RepoRoot(), "bench", "results", results.Started.Format("2006-01-02T1504")+"-day2")
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Day-2 figures, %s\n\n", results.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Measured by `go test ./test/day2` on %s (%s CPUs, %s), real control plane, real registry, real binaries.\n\n",
		results.Machine["host"], results.Machine["cpus"], results.Machine["go"])
	b.WriteString("| figure | value | target | met | what |\n|---|---|---|---|---|\n")
	names := make([]string, 0, len(results.Figures))
	for n := range results.Figures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := results.Figures[n]
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*f.Met]
		}
		fmt.Fprintf(&b, "| %s | %.2f %s | %s | %s | %s |\n", n, f.Value, f.Unit, f.Target, met, f.What)
	}
	if len(results.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range results.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s.json and .md\n", base)
	return os.WriteFile(base+".md", []byte(b.String()), 0o644)
}
