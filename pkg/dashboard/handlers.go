package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/server"
	"cvmanager.dev/cvmanager/pkg/workload"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// ContentSecurityPolicy is sent with every page: nothing but our own
// stylesheet and script loads, no inline script or style runs, and JSON
// is fetched from this origin only. Pages never embed user input in a
// script, so a hostile name stays text even if escaping ever failed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// HistoryReader reads history ConfigMaps (history.Store).
type HistoryReader = history.Lister

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
	// Fleet are the peers shown on the fleet page beside this cluster,
	// named FleetName there (nil: this cluster alone).
	Fleet     *Peers
	FleetName string
	pages     *template.Template
	records   *recordCache
}

// NewHandler parses the embedded templates. html/template escapes every
// value: image tags, labels and messages are user input.
func NewHandler(src Source, hist HistoryReader, cvs CVGetter) *Handler {
	h := &Handler{Source: src, History: hist, CVs: cvs, Clock: clock.RealClock{}}
	h.records = &recordCache{now: func() time.Time { return h.Clock.Now() }, ttl: RecordCacheTTL}
	h.pages = template.Must(template.New("").Funcs(template.FuncMap{
		"ago":         func(t time.Time) string { return ago(h.Clock.Now(), t) },
		"statusClass": func(s string) string { return "status-" + strings.ToLower(s) },
		"short":       shortDigest,
		"lower":       strings.ToLower,
		"since":       func(t time.Time) string { return since(h.Clock.Now(), t) },
		"duration":    duration,
		"percent":     percent,
		"add":         func(a, b int) int { return a + b },
		"rfc3339":     rfc3339,
		"provenance":  rowProvenance,
		"historyPath": CVHistoryPath,
	}).ParseFS(templateFS, "templates/*.html"))
	return h
}

// Register mounts the routes on mux. The first two are the original
// cvmanager's URLs: the rows, and one workload's history by the workload's
// name. A CV's history, which spans its workloads, has a path of its own
// so a CV name is never taken for a workload's.
func (h *Handler) Register(mux server.Router) {
	mux.HandleFunc("GET /v1/cv/workloads", h.workloads)
	mux.HandleFunc("GET /v1/cv/workloads/{name}", h.workloadHistory)
	mux.HandleFunc("GET /v1/cv/containerversions/{name}/history", h.cvHistory)
	mux.HandleFunc("GET /v1/cv/metrics", h.metricsPage)
	mux.HandleFunc("GET /v1/cv/activity", h.activity)
	mux.HandleFunc("GET "+FleetPath, h.fleetView)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", assets()))
}

// assets serves the dashboard's stylesheet and script from the binary,
// outside /v1/ so they need no token: they hold no data.
func assets() http.Handler {
	files := http.FileServerFS(mustSub(assetFS, "assets"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// CVHistoryPath is the URL of a CV's history page.
func CVHistoryPath(namespace, name string) string {
	return "/v1/cv/containerversions/" + url.PathEscape(name) + "/history?namespace=" + url.QueryEscape(namespace)
}

// WorkloadHistoryPath is the original's URL of a workload's history.
func WorkloadHistoryPath(namespace, name string) string {
	return "/v1/cv/workloads/" + url.PathEscape(name) + "?namespace=" + url.QueryEscape(namespace)
}

func (h *Handler) workloads(w http.ResponseWriter, r *http.Request) {
	f := ParseFilter(r.URL.Query())
	all, err := Rows(h.Source, f.Namespace)
	if err != nil {
		http.Error(w, "listing workloads: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rows, counts := f.Apply(all)
	if rows == nil {
		rows = []Row{}
	}
	if wantsHTML(r) {
		h.render(w, "workloads.html", workloadsPage{
			Rows: rows, Total: len(all), Filter: f, Counts: countLinks(f, counts), Headers: headers(f),
			States: States, Reload: r.URL.Query().Get("reload") == "true", Delivery: h.deliverySummary(r, f.Namespace),
		})
		return
	}
	writeJSON(w, rows)
}

// workloadsPage is what the workloads template shows.
type workloadsPage struct {
	Rows    []Row
	Total   int
	Filter  Filter
	Counts  []countLink
	Headers []header
	States  []string
	Reload  bool
	// Delivery are the namespaces' DORA figures of the last 7 days; nil
	// when the histories could not be read (the rows still show).
	Delivery []DORARow
}

// deliverySummary is the per-namespace DORA figures for the workloads
// page, best effort: a history that cannot be read must not hide the rows.
func (h *Handler) deliverySummary(r *http.Request, namespace string) []DORARow {
	rep, err := h.delivery(r.Context(), namespace, DORAWindow, Windows[DORAWindow])
	if err != nil {
		return nil
	}
	return rep.Namespaces
}

// countLink is one state's count at the top of the page, a link that
// filters by the state (or clears the filter when it is the current one).
type countLink struct {
	State  string
	Count  int
	Query  string
	Active bool
}

func countLinks(f Filter, counts map[string]int) []countLink {
	var out []countLink
	for _, s := range States {
		if s == StatePending && counts[s] == 0 {
			continue // only shown when there is something to show
		}
		next := f.With(s)
		if f.State == s {
			next = f.With("")
		}
		out = append(out, countLink{State: s, Count: counts[s], Query: next.Query(), Active: f.State == s})
	}
	return out
}

// header is a sortable column heading; its link sorts by the column.
type header struct {
	Key, Label, Query, Sort string
}

var columns = []struct{ key, label string }{
	{"state", "State"}, {"namespace", "Namespace"}, {"name", "Workload"}, {"cv", "ContainerVersion"},
	{"tag", "Tag"}, {"version", "Version"}, {"pods", "Pods"}, {"updated", "Updated"},
}

func headers(f Filter) []header {
	out := make([]header, len(columns))
	for i, c := range columns {
		out[i] = header{Key: c.key, Label: c.label, Query: f.SortedBy(c.key).Query()}
		if f.Sort == c.key {
			out[i].Sort = map[bool]string{false: "ascending", true: "descending"}[f.Desc]
		}
	}
	return out
}

// workloadHistory answers the original's history URL: the records of
// "<workload>.history" in the namespace, which also holds what earlier
// versions recorded for a CV of that name.
func (h *Handler) workloadHistory(w http.ResponseWriter, r *http.Request) {
	name, namespace := r.PathValue("name"), r.URL.Query().Get("namespace")
	if namespace == "" {
		http.Error(w, "the namespace query parameter is required: /v1/cv/workloads/"+name+"?namespace=<ns>", http.StatusBadRequest)
		return
	}
	records, err := h.History.List(r.Context(), namespace, history.WorkloadConfigMapName(name))
	if err != nil {
		http.Error(w, "reading history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rows, err := h.rowsNamed(namespace, name)
	if err != nil {
		http.Error(w, "listing workloads: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if len(records) == 0 && len(rows) == 0 {
		http.Error(w, fmt.Sprintf("no managed workload %s/%s and no history %s; the history of a ContainerVersion is at %s",
			namespace, name, history.WorkloadConfigMapName(name), CVHistoryPath(namespace, "<cv>")), http.StatusNotFound)
		return
	}
	h.answerHistory(w, r, historyPage{Title: "workload " + namespace + "/" + name, Namespace: namespace, Rows: rows}, records)
}

// cvHistory answers a CV's history: its own history ConfigMap and its
// records in the histories of the workloads it selects.
func (h *Handler) cvHistory(w http.ResponseWriter, r *http.Request) {
	name, namespace := r.PathValue("name"), r.URL.Query().Get("namespace")
	if namespace == "" {
		http.Error(w, "the namespace query parameter is required: "+CVHistoryPath("<ns>", name), http.StatusBadRequest)
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
	rows, err := Rows(singleCV{cv: cv, src: h.Source}, namespace)
	if err != nil {
		http.Error(w, "listing workloads: "+err.Error(), http.StatusInternalServerError)
		return
	}
	names := make([]string, 0, len(rows))
	for _, row := range rows {
		names = append(names, row.Name)
	}
	records, err := history.CVHistory(r.Context(), h.History, cv, names)
	if err != nil {
		http.Error(w, "reading history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h.answerHistory(w, r, historyPage{Title: "ContainerVersion " + namespace + "/" + name, Namespace: namespace, CV: cv, Rows: rows}, records)
}

// historyPage is what the history template shows above the records.
type historyPage struct {
	Title     string
	Namespace string
	CV        *cvv1.ContainerVersion
	Rows      []Row
	Records   []history.Record
}

func (h *Handler) answerHistory(w http.ResponseWriter, r *http.Request, page historyPage, records []history.Record) {
	if records == nil {
		records = []history.Record{}
	}
	if wantsHTML(r) {
		page.Records = records
		h.render(w, "history.html", page)
		return
	}
	writeJSON(w, records)
}

// rowsNamed are the managed workloads of namespace called name (a
// Deployment and a StatefulSet may share a name).
func (h *Handler) rowsNamed(namespace, name string) ([]Row, error) {
	all, err := Rows(h.Source, namespace)
	if err != nil {
		return nil, err
	}
	var out []Row
	for _, row := range all {
		if row.Name == name {
			out = append(out, row)
		}
	}
	return out, nil
}

// OneCV narrows src to one CV, for the rows of that CV alone.
func OneCV(cv *cvv1.ContainerVersion, src Source) Source { return singleCV{cv: cv, src: src} }

// singleCV is a Source narrowed to one CV, for that CV's rows.
type singleCV struct {
	cv  *cvv1.ContainerVersion
	src Source
}

func (s singleCV) ContainerVersions(string) ([]*cvv1.ContainerVersion, error) {
	return []*cvv1.ContainerVersion{s.cv}, nil
}

func (s singleCV) Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error) {
	return s.src.Workloads(namespace, selector)
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
	w.Header().Set("Content-Security-Policy", ContentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
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

// rfc3339 spells t as the JSON view does (a tooltip showed Go's default
// format, monotonic clock reading included); empty when never.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// since is how long ago t was, as a short duration ("3m12s").
func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

func mustSub(fsys embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
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
