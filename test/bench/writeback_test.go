package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteBackMarkdownRendersItsRuns: each recorded write-back figure's
// markdown is what its JSON renders, so the .md never says more than the
// .json holds.
func TestWriteBackMarkdownRendersItsRuns(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "bench", "results", "*-writeback-finish.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no write-back figure recorded (%v)", err)
	}
	for _, path := range paths {
		var r writeBackResult
		if err := readJSON(path, &r); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".md")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), r.markdown()); diff != "" {
			t.Errorf("%s (-file +rendered):\n%s", filepath.Base(path), diff)
		}
	}
}

// TestWriteBackVerdict: the target is met only by a complete run whose
// p99 is within it; a miss counts against it.
func TestWriteBackVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    latencyResult
		want string
	}{
		{"within", latencyResult{Samples: 100, Expected: 100, Complete: true, P99Ms: 1999}, "| met |"},
		{"slow", latencyResult{Samples: 100, Expected: 100, Complete: true, P99Ms: 2001}, "| missed |"},
		{"a miss", latencyResult{Samples: 99, Expected: 100, P99Ms: 300}, "| missed |"},
	} {
		r := writeBackResult{TargetP99Ms: 2000, Visible: tc.r}
		if md := r.markdown(); !strings.Contains(md, tc.want) {
			t.Errorf("%s: want %q in:\n%s", tc.name, tc.want, md)
		}
	}
}
