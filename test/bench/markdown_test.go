package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMarkdownRendersTheRecordedRun renders the JSON of the run that
// docs/performance.md quotes and compares it with the markdown written by
// that run, so a change to the tables cannot silently change the figures.
func TestMarkdownRendersTheRecordedRun(t *testing.T) {
	base := filepath.Join("..", "..", "bench", "results", "2026-11-29T1122-vm-issue24b")
	data, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(base + ".md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), r.markdown()); diff != "" {
		t.Errorf("markdown differs from the recorded run (-recorded +rendered):\n%s", diff)
	}
}
