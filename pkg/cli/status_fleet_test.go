package cli

import (
	"strings"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/fleet"
)

func TestPrintFleet(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	m := fleet.NewMatrix([]fleet.Cluster{
		{Name: "staging", Entries: []fleet.Entry{{Namespace: "web", Name: "api", Version: "v2", State: "Success", Since: now.Add(-time.Hour), Drifted: true},
			{Namespace: "web", Name: "evil\x1b[31m", Version: "v1\nx", State: "Success"}}},
		{Name: "prod", Entries: []fleet.Entry{{Namespace: "web", Name: "api", Version: "v1", State: "Held", Held: "v2"}}},
		{Name: "dr", Error: "dial tcp 127.0.0.1:1: connection refused"},
	})
	var b strings.Builder
	if err := printFleet(&b, "text", m, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"CV", "STAGING", "PROD", "DR", "web/api *", "v2 Success 1h0m0s drifted", "v1 Held held v2", "unreachable",
		"dr: unreachable: dial tcp"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b") || strings.Contains(out, "v1\nx") {
		t.Errorf("control characters reached the terminal:\n%q", out)
	}
}

func TestHeldText(t *testing.T) {
	until := time.Date(2026, 12, 7, 13, 30, 0, 0, time.UTC)
	if got := heldText(ServiceStatus{Available: "v3", HeldUntil: &until}); got != "v3 until 2026-12-07T13:30:00Z" {
		t.Errorf("heldText = %q", got)
	}
	if got := heldText(ServiceStatus{Available: "v3"}); got != "v3" {
		t.Errorf("heldText = %q", got)
	}
}
