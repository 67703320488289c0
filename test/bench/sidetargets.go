package main

import (
	"fmt"
	"strings"
)

// The push path (issue 31), write-back (issue 33) and fleet view (issue 34)
// write results files of their own (<time>-push, -writeback-finish,
// -fleet), from a full run or from their -*-only modes. The targets table
// judges each issue's targets against the newest such file, so a miss in
// any of them is listed with the others.

// sideResults are the newest of those files, each nil when none exists.
type sideResults struct {
	pushPath, writeBackPath, fleetPath string // relative to the repository root
	push                               *pushPathResult
	writeBack                          *writeBackResult
	fleet                              *fleetResult
}

// loadSide reads the newest push-path, write-back and fleet files under root.
func (res *results) loadSide(root string) error {
	var err error
	s := &res.side
	if s.push, s.pushPath, err = readNewest[pushPathResult](root, "-push.json"); err != nil {
		return err
	}
	if s.writeBack, s.writeBackPath, err = readNewest[writeBackResult](root, "-writeback-finish.json"); err != nil {
		return err
	}
	s.fleet, s.fleetPath, err = readNewest[fleetResult](root, "-fleet.json")
	return err
}

// sideTarget is one row judged from one of those files: its figure,
// whether it met the target, and whether the file measured it.
type sideTarget struct {
	name string
	file func(s *sideResults) string
	eval func(s *sideResults) (fig string, met, measured bool)
}

var sideTargets = []sideTarget{
	{
		name: "push path (issue 31): 100 announced pushes through a real Distribution posting every event, default flags: push → patched p50 ≤ 300 ms and p99 ≤ 1 s, 100% started by the webhook, 0 429s in the registry's log",
		file: func(s *sideResults) string { return s.pushPath },
		eval: func(s *sideResults) (string, bool, bool) {
			p := s.push
			if p == nil || p.Pushes == 0 {
				return "", false, false
			}
			l := p.Patched
			fig := fmt.Sprintf("p50 %.0f / p99 %.0f ms (%d of %d), %.0f%% by the webhook, %d 429s",
				l.P50Ms, l.P99Ms, l.Samples, p.Pushes, p.WebhookPercent, p.Registry429)
			met := l.Samples == p.Pushes && l.P50Ms <= 300 && l.P99Ms <= 1000 && p.WebhookPercent == 100 && p.Registry429 == 0
			return fig, met, true
		},
	},
	{
		name: "new digest cost (issue 31): an announced new digest costs ≤ 3 requests + the new tag, and push → patched ≤ 1 s, in repositories of 1, 42 and 500 version tags",
		file: func(s *sideResults) string { return s.pushPath },
		eval: func(s *sideResults) (string, bool, bool) {
			if s.push == nil || len(s.push.NewDigest) == 0 {
				return "", false, false
			}
			met := true
			var parts []string
			for _, c := range s.push.NewDigest {
				most := int64(0)
				for _, n := range c.Requests {
					most = max(most, n)
				}
				met = met && len(c.Requests) > 0 && most <= 4 && c.Patched.MaxMs <= 1000
				parts = append(parts, fmt.Sprintf("%d %s: at most %d requests, max %.0f ms", c.VersionTags, plural(c.VersionTags, "tag", "tags"), most, c.Patched.MaxMs))
			}
			return strings.Join(parts, "; "), met, true
		},
	},
	{
		name: "20 back-to-back triggers (issue 31), default flags: trigger → patched median ≤ 150 ms, max ≤ 500 ms",
		file: func(s *sideResults) string { return s.pushPath },
		eval: func(s *sideResults) (string, bool, bool) {
			if s.push == nil || s.push.Triggers.N == 0 {
				return "", false, false
			}
			t := s.push.Triggers
			fig := fmt.Sprintf("p50 %.0f / max %.0f ms (%d of %d)", t.Patched.P50Ms, t.Patched.MaxMs, t.Patched.Samples, t.N)
			return fig, t.Patched.Samples == t.N && t.Patched.P50Ms <= 150 && t.Patched.MaxMs <= 500, true
		},
	},
	{
		name: "git write-back (issue 33): rollout finished → commit visible in the remote, p99 ≤ 2 s over ≥ 100 samples",
		file: func(s *sideResults) string { return s.writeBackPath },
		eval: func(s *sideResults) (string, bool, bool) {
			w := s.writeBack
			if w == nil || w.Visible.Samples == 0 {
				return "", false, false
			}
			fig := fmt.Sprintf("p50 %.1f / p99 %.1f ms over %d samples, %d commits", w.Visible.P50Ms, w.Visible.P99Ms, w.Visible.Samples, w.Commits)
			return fig, w.Visible.Samples >= 100 && w.Visible.P99Ms <= 2000 && len(w.Misses) == 0, true
		},
	},
	{
		name: "fleet view (issue 34), 3 clusters × 200 CVs: `status --contexts` ≤ 1 s and the fleet page ≤ 1 s",
		file: func(s *sideResults) string { return s.fleetPath },
		eval: func(s *sideResults) (string, bool, bool) {
			f := s.fleet
			if f == nil || f.Rounds == 0 {
				return "", false, false
			}
			fig := fmt.Sprintf("status median %.0f / max %.0f ms; page median %.0f / max %.0f ms (%d rounds)",
				f.StatusMs.Median, f.StatusMs.Max, f.PageMs.Median, f.PageMs.Max, f.Rounds)
			return fig, f.StatusMs.Max <= 1000 && f.PageMs.Max <= 1000 && len(f.Errors) == 0, true
		},
	},
}

// sideRows are the targets table's rows of those files, with the misses
// appended to missed.
func (res *results) sideRows(b *strings.Builder, missed *[]string) {
	for _, t := range sideTargets {
		fig, met, measured := t.eval(&res.side)
		file := "–"
		if p := t.file(&res.side); p != "" {
			file = link(p)
		}
		targetRow(b, missed, t.name, fig, file, met, measured)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
