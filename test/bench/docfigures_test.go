package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// resultsLink finds links to results files in markdown: (../bench/results/X.md),
// (bench/results/X.json), or a controller log the bench kept
// (bench/results/logs/X.log).
var resultsLink = regexp.MustCompile(`\((?:\.\./)*(bench/results/[^)\s]+\.(?:md|json|log))\)`)

// wholeLink is a link to a results file with its text, dropped before
// the figures are read (a file's name is a date, not a figure).
var wholeLink = regexp.MustCompile(`\[[^\]]*\]\((?:\.\./)*bench/results/[^)\s]+\)`)

// figureWithUnit finds measured figures: a number followed by a unit. A
// number after "<", "≤" or ">" is a target or a bound (group 1), not a
// measurement.
var figureWithUnit = regexp.MustCompile(`(?:^|[^\w.,/-])([<≤>]\s?)?(\d[\d,]*(?:\.\d+)?)\s?(?:ms|s|MiB|GiB|%|req/s)(?:[^\w]|$)`)

// TestDocFiguresAreInTheirResultsFiles: in README.md and docs/*.md, every
// paragraph, list item or table that links a results file under
// bench/results quotes only figures that file holds (a figure with a unit
// must appear as a number in a linked file; a table without a link of its
// own takes the links of the paragraph before it). Outside the generated
// part, which TestPerformanceDocMatchesNewestResults checks.
func TestDocFiguresAreInTheirResultsFiles(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	numbers := map[string]map[string]bool{} // results file → numbers it holds
	checked := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var prevLinks []string
		for _, block := range blocks(withoutGenerated(string(data))) {
			links := linksOf(block)
			if len(links) == 0 && strings.HasPrefix(block, "|") {
				links = prevLinks
			}
			prevLinks = links
			if len(links) == 0 {
				continue
			}
			held := map[string]bool{}
			for _, l := range links {
				if numbers[l] == nil {
					b, err := os.ReadFile(filepath.Join(root, l))
					if err != nil {
						t.Errorf("%s links %s: %v", doc, l, err)
						continue
					}
					numbers[l] = numbersIn(string(b))
				}
				for n := range numbers[l] {
					held[n] = true
				}
			}
			text := wholeLink.ReplaceAllString(block, "[]()")
			for _, n := range tableFigures(text) {
				checked++
				if !held[normalize(n)] {
					t.Errorf("%s: table figure %s is in no linked results file (%s), in:\n%s", filepath.Base(doc), n, strings.Join(links, ", "), block)
				}
			}
			for _, m := range figureWithUnit.FindAllStringSubmatch(text, -1) {
				if m[1] != "" {
					continue
				}
				checked++
				if n := normalize(m[2]); !held[n] {
					t.Errorf("%s: %q is in no linked results file (%s), in:\n%s", filepath.Base(doc), strings.TrimSpace(m[0]), strings.Join(links, ", "), block)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no figure linked to a results file was found: the check checks nothing")
	}
}

// withoutGenerated drops docs/performance.md's generated part.
func withoutGenerated(doc string) string {
	i, j := strings.Index(doc, beginGenerated), strings.Index(doc, endGenerated)
	if i < 0 || j < i {
		return doc
	}
	return doc[:i] + doc[j:]
}

// blocks splits markdown at blank lines and at list items, so each
// paragraph, item or table is judged by its own links.
func blocks(doc string) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flush()
			continue
		case strings.HasPrefix(trimmed, "- ") || regexp.MustCompile(`^\d+\. `).MatchString(trimmed):
			flush()
		}
		cur = append(cur, trimmed)
	}
	flush()
	return out
}

func linksOf(block string) []string {
	var out []string
	for _, m := range resultsLink.FindAllStringSubmatch(block, -1) {
		out = append(out, m[1])
	}
	return out
}

// numbersIn are the numbers a results file holds, normalized.
func numbersIn(s string) map[string]bool {
	out := map[string]bool{}
	for _, n := range regexp.MustCompile(`\d[\d,]*(?:\.\d+)?`).FindAllString(s, -1) {
		out[normalize(n)] = true
	}
	return out
}

// normalize drops thousands separators: "1,000" and "1000" are one figure.
func normalize(n string) string {
	return strings.ReplaceAll(strings.TrimRight(n, ","), ",", "")
}

// tableFigures are the numbers in a table's cells below its alignment row,
// but for the first column, which names the row.
func tableFigures(block string) []string {
	if !strings.HasPrefix(block, "|") {
		return nil
	}
	var out []string
	rows := strings.Split(block, "\n")
	for i, row := range rows {
		if i < 2 || !strings.HasPrefix(row, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(row, "|"), "|")
		for _, c := range cells[1:] {
			out = append(out, regexp.MustCompile(`\d[\d,]*(?:\.\d+)?`).FindAllString(c, -1)...)
		}
	}
	return out
}
