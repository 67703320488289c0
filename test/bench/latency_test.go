package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSummarizeP99IsARealP99: with 200 samples the nearest-rank p99 is the
// 198th smallest, so two outliers do not make the p99; with 10 samples
// p99 is the maximum, which is why the bench gathers at least 200.
func TestSummarizeP99IsARealP99(t *testing.T) {
	samples := func(n int, outliers ...time.Duration) []time.Duration {
		var out []time.Duration
		for i := 1; i <= n-len(outliers); i++ {
			out = append(out, time.Duration(i)*time.Millisecond)
		}
		return append(out, outliers...)
	}
	tests := []struct {
		name    string
		samples []time.Duration
		want    latencyResult
	}{
		{"200 samples, 2 outliers", samples(200, 5*time.Second, 9*time.Second),
			latencyResult{Samples: 200, Expected: 200, P50Ms: 100, P99Ms: 198, MaxMs: 9000}},
		{"10 samples: p99 is the max", samples(10),
			latencyResult{Samples: 10, Expected: 200, P50Ms: 5, P99Ms: 10, MaxMs: 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarize(tc.samples, 200)); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAllHeadedSince: the restart's "every ref polled" comes from the
// HEADs the proxy saw, per repository, after the controller was ready.
func TestAllHeadedSince(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &countingProxy{heads: map[string][]time.Time{
		"a": {t0.Add(-time.Second), t0.Add(3 * time.Second)},
		"b": {t0.Add(7 * time.Second)},
		"c": {t0.Add(-time.Second)},
	}}
	if got := p.allHeadedSince([]string{"a", "b"}, t0); !got.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("a, b: %v, want t0+7s", got)
	}
	if got := p.allHeadedSince([]string{"a", "c"}, t0); !got.IsZero() {
		t.Errorf("c had no HEAD since t0, got %v", got)
	}
}
