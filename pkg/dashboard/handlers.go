package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
)

//go:embed templates/*.html
var templateFS embed.FS

// HistoryReader reads a CV's history records.
type HistoryReader interface {
	List(ctx context.Context, namespace, configMapName string) ([]history.Record, error)
}

// CVGetter finds one CV, for the history page.
type CVGetter interface {
	Get(namespace, name string) (*cvv1.ContainerVersion, error)
}

// Handler serves the workloads view and history pages.
type Handler struct {
	Source  Source
	History HistoryReader
	CVs     CVGetter
	// Clock is injectable so golden files have stable relative times.
	Clock clock.Clock
	pages *template.Template
}

// NewHandler parses the embedded templates. html/template escapes every
// value: image tags, labels and messages are user input.
func NewHandler(src Source, hist HistoryReader, cvs CVGetter) *Handler {
	h := &Handler{Source: src, History: hist, CVs: cvs, Clock: clock.RealClock{}}
	h.pages = template.Must(template.New("").Funcs(template.FuncMap{
		"ago":         func(t time.Time) string { return ago(h.Clock.Now(), t) },
		"statusClass": func(s string) string { return "status-" + strings.ToLower(s) },
		"short":       shortDigest,
	}).ParseFS(templateFS, "templates/*.html"))
	return h
}

// Register mounts the routes on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/cv/workloads", h.workloads)
	mux.HandleFunc("GET /v1/cv/workloads/{name}", h.history)
}

func (h *Handler) workloads(w http.ResponseWriter, r *http.Request) {
	namespace := r.URL.Query().Get("namespace")
	rows, err := Rows(h.Source, namespace)
	if err != nil {
		http.Error(w, "listing workloads: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if rows == nil {
		rows = []Row{}
	}
	if wantsHTML(r) {
		h.render(w, "workloads.html", map[string]any{
			"Rows": rows, "Namespace": namespace, "Reload": r.URL.Query().Get("reload") == "true",
		})
		return
	}
	writeJSON(w, rows)
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	name, namespace := r.PathValue("name"), r.URL.Query().Get("namespace")
	if namespace == "" {
		http.Error(w, "the namespace query parameter is required: /v1/cv/workloads/"+name+"?namespace=<ns>", http.StatusBadRequest)
		return
	}
	cv, err := h.CVs.Get(namespace, name)
	if apierrors.IsNotFound(err) {
		http.Error(w, "no ContainerVersion "+namespace+"/"+name, http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	records, err := h.History.List(r.Context(), namespace, history.ConfigMapName(cv))
	if err != nil && !apierrors.IsNotFound(err) {
		http.Error(w, "reading history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if records == nil {
		records = []history.Record{}
	}
	if wantsHTML(r) {
		h.render(w, "history.html", map[string]any{"CV": cv, "Records": records})
		return
	}
	writeJSON(w, records)
}

// wantsHTML honours ?format= first, then Accept; JSON is the default.
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "html":
		return true
	case "json":
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (h *Handler) render(w http.ResponseWriter, page string, data any) {
	var b strings.Builder
	if err := h.pages.ExecuteTemplate(&b, page, data); err != nil {
		http.Error(w, "rendering: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	_, _ = w.Write([]byte(b.String()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return pluralize(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return pluralize(int(d/time.Hour), "hour") + " ago"
	default:
		return pluralize(int(d/(24*time.Hour)), "day") + " ago"
	}
}

func pluralize(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strings.Join([]string{itoa(n), unit + "s"}, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
