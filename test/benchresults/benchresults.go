// Package benchresults writes and finds the results files of the
// benchmarks that run outside `make bench` (the bench itself, test/bench,
// writes its own report): each run leaves <date>-<host>-<kind>.json and
// .md under bench/results, so docs quote figures a file holds.
package benchresults

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// DashboardKind names the dashboard's Chromium timings in file names.
const DashboardKind = "dashboard"

// Dashboard is one run of BenchmarkDashboard1000RowsInChromium: the slowest
// of Loads timed page loads in headless Chromium, in ms, against BudgetMs.
type Dashboard struct {
	Kind    string    `json:"kind"`
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	CPUs    int       `json:"cpus"`
	Go      string    `json:"goVersion"`
	Load    string    `json:"loadAverage"`
	Rows    int       `json:"rows"`
	// Loads is how many timed loads the slowest figures are taken over.
	Loads int `json:"loads"`
	// ColdRenderMs is the first load in a new browser, not budgeted.
	ColdRenderMs  float64 `json:"coldRenderMs"`
	RenderMs      float64 `json:"renderMs"`
	TextFilterMs  float64 `json:"textFilterMs"`
	StateFilterMs float64 `json:"stateFilterMs"`
	BudgetMs      float64 `json:"budgetMs"`
}

// Met says whether every timed figure is within the budget.
func (d Dashboard) Met() bool {
	return d.RenderMs <= d.BudgetMs && d.TextFilterMs <= d.BudgetMs && d.StateFilterMs <= d.BudgetMs
}

// Markdown renders d as the results file's .md.
func (d Dashboard) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# cvmanager dashboard in Chromium %s\n\n", d.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s, load average %s. BenchmarkDashboard1000RowsInChromium (test/e2e).\n\n", d.Host, d.CPUs, d.Go, d.Load)
	fmt.Fprintf(&b, "%d rows; the slowest of %d timed loads in headless Chromium (ms), after one untimed load in a new browser.\n\n", d.Rows, d.Loads)
	b.WriteString("| figure | ms | budget (ms) |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| navigation start → rendered | %.0f | %.0f |\n", d.RenderMs, d.BudgetMs)
	fmt.Fprintf(&b, "| text filter | %.0f | %.0f |\n", d.TextFilterMs, d.BudgetMs)
	fmt.Fprintf(&b, "| state filter | %.0f | %.0f |\n", d.StateFilterMs, d.BudgetMs)
	fmt.Fprintf(&b, "| first load in a new browser (not budgeted) | %.0f | – |\n", d.ColdRenderMs)
	return b.String()
}

// WriteDashboard fills in the machine and writes d under dir as
// <date>-<host>-dashboard.json and .md; it returns the JSON's path.
func WriteDashboard(dir string, d Dashboard) (string, error) {
	d.Kind = DashboardKind
	if d.Started.IsZero() {
		d.Started = time.Now().UTC()
	}
	d.Host, _ = os.Hostname()
	d.CPUs, d.Go, d.Load = runtime.NumCPU(), runtime.Version(), loadavg()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, d.Started.Format("2006-01-02T1504")+"-"+d.Host+"-"+DashboardKind)
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return "", err
	}
	return base + ".json", os.WriteFile(base+".md", []byte(d.Markdown()), 0o644)
}

// Newest is the newest results JSON in dir whose name ends in suffix
// (e.g. "-dashboard.json"), by the date its name starts with; keep
// filters names further. It returns "" when there is none.
func Newest(dir, suffix string, keep func(name string) bool) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, suffix) && (keep == nil || keep(n)) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1]), nil
}

// Dir is the repository's bench/results, found from the working directory
// up to the go.mod, so a test in any package writes to the same place.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bench", "results"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
