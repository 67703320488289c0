package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"cvmanager.dev/cvmanager/test/benchresults"
)

// Issue 32's targets (footprint, handover) are measured by test/day2, which
// every `make test` runs and which writes bench/results/<time>-day2.json.
// docs/performance.md's targets table quotes one such file by name: `-docs`
// takes the newest, and the doc test judges the rows against the file the
// doc links, since each test run writes a newer one.

// day2Report is what the targets table reads of a day-2 results file.
type day2Report struct {
	Figures map[string]day2Figure `json:"figures"`
}

type day2Figure struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Met   *bool   `json:"met"`
}

// day2Target is one row: the figures that judge it, the first one quoted
// as the figure and the rest in brackets.
type day2Target struct {
	name    string
	figures []string
}

var day2Targets = []day2Target{
	{"controller RSS idle ≤ 45 MiB, half of Keel's 82–105 MiB on the 20-app set as issue 32 gives them (issue 32)", []string{"rss_idle", "rss_idle_peak"}},
	{"controller RSS at 20 apps (20 Deployments, 5 repositories, 10 s polls) ≤ 45 MiB (issue 32)", []string{"rss_20_apps", "rss_20_apps_peak"}},
	{"SIGTERM to the leader: the standby acts on a trigger within 2 s (issue 32)", []string{"sigterm_handover_acted", "sigterm_handover_lease"}},
	{"kill -9 of the leader: the standby acts within the Lease settings' bound (issue 32)", []string{"kill9_takeover_acted", "kill9_takeover_lease"}},
	{"binary size, reported: the controller, and the state commands apart (issue 32)", []string{"binary_size_cvmanager", "binary_size_cvmanager_state"}},
}

// eval is the row's figure ("16.88 MiB (rss_idle_peak 32.56 MiB)"), whether
// every figure with a target met it, and whether the file holds them all.
func (t day2Target) eval(r *day2Report) (string, bool, bool) {
	met := true
	var parts []string
	for _, name := range t.figures {
		f, ok := r.Figures[name]
		if !ok {
			return "", false, false
		}
		if f.Met != nil && !*f.Met {
			met = false
		}
		parts = append(parts, fmt.Sprintf("%s %.2f %s", name, f.Value, f.Unit))
	}
	return strings.Join(parts, ", "), met, true
}

// day2Link finds the day-2 file a generated section links.
var day2Link = regexp.MustCompile(`bench/results/(\d{4}-\d{2}-\d{2}T\d{4}-day2)\.md`)

// newestDay2 is the path of the newest day-2 results file under dir ("" if none).
func newestDay2(dir string) (string, error) {
	return benchresults.Newest(dir, "-day2.json", nil)
}

// linkedDay2 is the path of the day-2 results file doc's generated part
// links ("" if none).
func linkedDay2(root, doc string) string {
	i, j := strings.Index(doc, beginGenerated), strings.Index(doc, endGenerated)
	if i < 0 || j < i {
		return ""
	}
	m := day2Link.FindStringSubmatch(doc[i:j])
	if m == nil {
		return ""
	}
	return filepath.Join(root, "bench", "results", m[1]+".json")
}

// loadDay2 reads the day-2 file at path into res (nothing when path is "").
func (res *results) loadDay2(root, path string) error {
	res.day2, res.day2Path = nil, ""
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	res.day2 = &day2Report{}
	if err := readJSON(path, res.day2); err != nil {
		return err
	}
	res.day2Path, _ = filepath.Rel(root, path)
	return nil
}

// day2Rows are the targets table's rows of issue 32's day-2 targets, with
// the misses appended to missed.
func (res *results) day2Rows(b *strings.Builder, missed *[]string) {
	for _, t := range day2Targets {
		if res.day2 == nil {
			fmt.Fprintf(b, "| %s | not measured: no day-2 results file | not measured | – |\n", t.name)
			continue
		}
		fig, met, measured := t.eval(res.day2)
		targetRow(b, missed, t.name, fig, link(res.day2Path), met, measured)
	}
}
