package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"cvmanager.dev/cvmanager/pkg/dora"
)

// Windows are the periods the activity view and the delivery metrics
// offer, by their query value.
var Windows = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// parseWindow reads ?window=, defaulting to def; anything else is an error
// that names the choices.
func parseWindow(r *http.Request, def string) (string, time.Duration, error) {
	name := r.URL.Query().Get("window")
	if name == "" {
		name = def
	}
	d, ok := Windows[name]
	if !ok {
		return "", 0, fmt.Errorf("window %q: use 24h, 7d or 30d", name)
	}
	return name, d, nil
}

// Delivery is the DORA report served at /v1/cv/metrics: per namespace and
// per ContainerVersion, over a window ending now.
type Delivery struct {
	Window            string    `json:"window"`
	From              time.Time `json:"from"`
	To                time.Time `json:"to"`
	Namespaces        []DORARow `json:"namespaces"`
	ContainerVersions []DORARow `json:"containerVersions"`
}

// DORARow are the figures of one ContainerVersion (Name set) or of every
// ContainerVersion of a namespace pooled (Name empty).
type DORARow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name,omitempty"`
	dora.Figures
}

// delivery computes the report from the cached histories.
func (h *Handler) delivery(ctx context.Context, namespace, window string, d time.Duration) (Delivery, error) {
	all, err := h.records.get(ctx, h.Source, h.History, namespace)
	if err != nil {
		return Delivery{}, err
	}
	to := h.Clock.Now()
	rep := Delivery{Window: window, From: to.Add(-d), To: to, Namespaces: []DORARow{}, ContainerVersions: []DORARow{}}
	pooled := map[string][]dora.Samples{}
	for _, c := range all {
		s := dora.FromRecords(c.Records, rep.From, to)
		pooled[c.Namespace] = append(pooled[c.Namespace], s)
		rep.ContainerVersions = append(rep.ContainerVersions, DORARow{Namespace: c.Namespace, Name: c.CV, Figures: s.Figures(d)})
	}
	for ns, samples := range pooled {
		rep.Namespaces = append(rep.Namespaces, DORARow{Namespace: ns, Figures: dora.Merge(samples...).Figures(d)})
	}
	sort.Slice(rep.Namespaces, func(i, j int) bool { return rep.Namespaces[i].Namespace < rep.Namespaces[j].Namespace })
	sort.Slice(rep.ContainerVersions, func(i, j int) bool {
		a, b := rep.ContainerVersions[i], rep.ContainerVersions[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	return rep, nil
}

// metricsPage answers /v1/cv/metrics: the DORA report as JSON or HTML.
func (h *Handler) metricsPage(w http.ResponseWriter, r *http.Request) {
	window, d, err := parseWindow(r, "7d")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rep, err := h.delivery(r.Context(), r.URL.Query().Get("namespace"), window, d)
	if err != nil {
		http.Error(w, "reading histories: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if wantsHTML(r) {
		h.render(w, "metrics.html", map[string]any{"Report": rep, "Namespace": r.URL.Query().Get("namespace"), "Windows": windowNames})
		return
	}
	writeJSON(w, rep)
}

var windowNames = []string{"24h", "7d", "30d"}

// duration formats seconds for people: "2m30s", "1h5m", "-" for none.
func duration(seconds float64, n int) string {
	if n == 0 {
		return "-"
	}
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// percent formats a rate as a percentage, "-" when nothing was counted.
func percent(rate float64, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", rate*100)
}
