// Package results writes the figures a test suite measured to
// bench/results/<time>-<name>.{json,md}, so a doc quotes a file the
// measuring code wrote rather than a test log (docs/performance.md). A
// figure with a limit is marked met or missed; it does not fail the test:
// targets are judged from results, not from timed tests.
package results

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

	"cvmanager.dev/cvmanager/test/benchresults"
)

// Report is everything one run measured, by name; each figure carries its
// unit and, where there is one, its target.
type Report struct {
	mu      sync.Mutex
	Started time.Time         `json:"started"`
	Machine map[string]string `json:"machine"`
	Figures map[string]Figure `json:"figures"`
	Notes   []string          `json:"notes,omitempty"`

	name, title, suite string
}

// Figure is one measured value.
type Figure struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	// Met is nil when the figure has no target.
	Met  *bool  `json:"met,omitempty"`
	What string `json:"what"`
}

// New starts a report named name (the file suffix), titled title in its
// markdown, for the figures of the test package suite (e.g. "./test/day2").
func New(name, title, suite string) *Report {
	host, _ := os.Hostname()
	return &Report{
		Started: time.Now().UTC(),
		Machine: map[string]string{"host": host, "cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(),
			"os": runtime.GOOS + "/" + runtime.GOARCH},
		Figures: map[string]Figure{},
		name:    name, title: title, suite: suite,
	}
}

// Record adds a figure; limit > 0 is an upper bound it should stay under.
func (r *Report) Record(t testing.TB, name string, value float64, unit string, limit float64, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := Figure{Value: value, Unit: unit, What: what}
	if limit > 0 {
		met := value <= limit
		f.Target, f.Met = fmt.Sprintf("<= %g %s", limit, unit), &met
	}
	r.Figures[name] = f
	t.Logf("MEASURE %s = %.2f %s %s", name, value, unit, f.Target)
}

// Note adds a line under the figures.
func (r *Report) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Write saves the report as JSON and markdown, when it holds a figure: a
// run that measured nothing (say -run picked other tests) writes nothing.
func (r *Report) Write() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Figures) == 0 {
		return nil
	}
	dir, err := benchresults.Dir()
	if err != nil {
		return err
	}
	base := filepath.Join(dir, r.Started.Format("2006-01-02T1504")+"-"+r.name)
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s.json and .md\n", base)
	return os.WriteFile(base+".md", []byte(r.markdown()), 0o644)
}

func (r *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, %s\n\n", r.title, r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Measured by `go test %s` on %s (%s CPUs, %s), real control plane, real registry, real binaries.\n\n",
		r.suite, r.Machine["host"], r.Machine["cpus"], r.Machine["go"])
	b.WriteString("| figure | value | target | met | what |\n|---|---|---|---|---|\n")
	names := make([]string, 0, len(r.Figures))
	for n := range r.Figures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := r.Figures[n]
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*f.Met]
		}
		fmt.Fprintf(&b, "| %s | %.2f %s | %s | %s | %s |\n", n, f.Value, f.Unit, f.Target, met, f.What)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}
