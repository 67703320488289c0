package dashboard

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"cvmanager.dev/cvmanager/pkg/history"
)

// Activity is every rollout of a window, grouped by ContainerVersion, the
// group with the latest rollout first and each group newest first.
type Activity struct {
	Window            string          `json:"window"`
	From              time.Time       `json:"from"`
	To                time.Time       `json:"to"`
	ContainerVersions []ActivityGroup `json:"containerVersions"`
}

// ActivityGroup is one ContainerVersion's rollouts.
type ActivityGroup struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Rollouts  []history.Record `json:"rollouts"`
}

// activity answers /v1/cv/activity?window=24h|7d|30d&namespace=.
func (h *Handler) activity(w http.ResponseWriter, r *http.Request) {
	window, d, err := parseWindow(r, "24h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	namespace := r.URL.Query().Get("namespace")
	all, err := h.records.get(r.Context(), h.Source, h.History, namespace)
	if err != nil {
		http.Error(w, "reading histories: "+err.Error(), http.StatusInternalServerError)
		return
	}
	act := buildActivity(all, window, d, h.Clock.Now())
	if wantsHTML(r) {
		h.render(w, "activity.html", map[string]any{"Activity": act, "Namespace": namespace, "Windows": windowNames,
			"Timeline": drawTimeline(act, d), "Count": act.count()})
		return
	}
	writeJSON(w, act)
}

// buildActivity keeps the rollouts that finished in the window.
func buildActivity(all []cvRecords, window string, d time.Duration, now time.Time) Activity {
	act := Activity{Window: window, From: now.Add(-d), To: now, ContainerVersions: []ActivityGroup{}}
	for _, c := range all {
		g := ActivityGroup{Namespace: c.Namespace, Name: c.CV}
		for _, rec := range c.Records {
			if rec.Action == "" && !rec.Time.Before(act.From) && !rec.Time.After(now) {
				g.Rollouts = append(g.Rollouts, rec)
			}
		}
		if len(g.Rollouts) > 0 {
			sort.SliceStable(g.Rollouts, func(i, j int) bool { return g.Rollouts[i].Time.After(g.Rollouts[j].Time) })
			act.ContainerVersions = append(act.ContainerVersions, g)
		}
	}
	sort.SliceStable(act.ContainerVersions, func(i, j int) bool {
		return act.ContainerVersions[i].Rollouts[0].Time.After(act.ContainerVersions[j].Rollouts[0].Time)
	})
	return act
}

func (a Activity) count() int {
	n := 0
	for _, g := range a.ContainerVersions {
		n += len(g.Rollouts)
	}
	return n
}

// timeline is the activity drawn as SVG shapes; the template writes them,
// so every label is escaped.
type timeline struct {
	Width, Height int
	Ticks         []tick
	Lanes         []lane
	Omitted       int
}

type tick struct {
	X     float64
	Label string
}

type lane struct {
	Y     int
	Label string
	Marks []mark
}

type mark struct {
	X, W  float64
	Class string
	Label string
}

// Timeline geometry, in SVG user units.
const (
	tlWidth    = 1000
	tlLabels   = 180 // the lane labels' column
	tlLane     = 22
	tlAxis     = 24
	tlMaxLanes = 100
)

// drawTimeline places one lane per ContainerVersion (at most tlMaxLanes)
// and one mark per rollout, from its start to its end.
func drawTimeline(a Activity, d time.Duration) timeline {
	span := float64(tlWidth - tlLabels - 10)
	x := func(t time.Time) float64 { return tlLabels + span*float64(t.Sub(a.From))/float64(d) }
	tl := timeline{Width: tlWidth, Ticks: ticks(a.From, d, x)}
	for i, g := range a.ContainerVersions {
		if i == tlMaxLanes {
			tl.Omitted = len(a.ContainerVersions) - i
			break
		}
		l := lane{Y: tlAxis + i*tlLane, Label: g.Namespace + "/" + g.Name}
		for _, r := range g.Rollouts {
			start := r.Time.Add(-time.Duration(r.DurationSeconds * float64(time.Second)))
			if start.Before(a.From) {
				start = a.From
			}
			m := mark{X: x(start), W: max(3, x(r.Time)-x(start)), Class: markClass(r.Outcome),
				Label: fmt.Sprintf("%s %s → %s (%s)", r.Outcome, r.FromVersion, r.ToVersion, r.Time.UTC().Format(time.RFC3339))}
			l.Marks = append(l.Marks, m)
		}
		tl.Lanes = append(tl.Lanes, l)
	}
	tl.Height = tlAxis + len(tl.Lanes)*tlLane + 4
	return tl
}

// ticks are the axis labels: every 3 hours over a day, else daily (every
// 5 days over 30).
func ticks(from time.Time, d time.Duration, x func(time.Time) float64) []tick {
	step, layout := 3*time.Hour, "15:04"
	switch {
	case d > 8*24*time.Hour:
		step, layout = 5*24*time.Hour, "Jan 2"
	case d > 24*time.Hour:
		step, layout = 24*time.Hour, "Jan 2"
	}
	var out []tick
	for t := from.UTC().Truncate(step).Add(step); t.Before(from.Add(d)); t = t.Add(step) {
		out = append(out, tick{X: x(t), Label: t.Format(layout)})
	}
	return out
}

func markClass(outcome string) string {
	switch outcome {
	case history.OutcomeSuccess:
		return "mark-success"
	case history.OutcomeFailed, history.OutcomeRolledBack, history.OutcomeAborted:
		return "mark-failed"
	}
	return "mark-other"
}
