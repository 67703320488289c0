package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/history"
)

// TestHistoryTableShowsGit: the table's GIT column names each rollout's
// commit (short) or pull request, or the state while none exists.
func TestHistoryTableShowsGit(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	records := []history.Record{
		{Time: at, Outcome: history.OutcomeSuccess, ToVersion: "v3", WriteBack: &history.WriteBack{State: "Written", Commit: "9b1e0c4d2f"}},
		{Time: at, Outcome: history.OutcomeSuccess, ToVersion: "v2", WriteBack: &history.WriteBack{State: "Written", URL: "https://git.example/pr/7"}},
		{Time: at, Outcome: history.OutcomeSuccess, ToVersion: "v1", WriteBack: &history.WriteBack{State: "Failed", Reason: "auth"}},
		{Time: at, Outcome: history.OutcomeSuccess, ToVersion: "v0"},
	}
	var out bytes.Buffer
	if err := printRecords(&out, records, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], "GIT") {
		t.Fatalf("header %q lacks GIT", lines[0])
	}
	for i, want := range []string{"Written 9b1e0c4 ", "Written https://git.example/pr/7", "Failed ", "-"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("row %d %q lacks %q", i+1, lines[i+1], want)
		}
	}
}
