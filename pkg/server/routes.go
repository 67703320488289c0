package server

import (
	_ "embed"
	"net/http"
	"slices"
	"sync"
)

// Router is what the packages that mount routes need. Both *http.ServeMux
// and *Mux are one; the controller passes a *Mux so that every route it
// serves is known, and the OpenAPI document can be checked against them.
type Router interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Mux is an http.ServeMux that remembers the patterns registered on it:
// http.ServeMux has no way to list them, and the test that keeps
// /v1/openapi.json complete needs the real route table, not a hand list.
type Mux struct {
	*http.ServeMux
	mu       sync.Mutex
	patterns []string
}

// NewRecordingMux returns an empty Mux.
func NewRecordingMux() *Mux {
	return &Mux{ServeMux: http.NewServeMux()}
}

// Handle registers handler for pattern and records the pattern.
func (m *Mux) Handle(pattern string, handler http.Handler) {
	m.ServeMux.Handle(pattern, handler)
	m.record(pattern)
}

// HandleFunc registers handler for pattern and records the pattern.
func (m *Mux) HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request)) {
	m.ServeMux.HandleFunc(pattern, handler)
	m.record(pattern)
}

func (m *Mux) record(pattern string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.patterns = append(m.patterns, pattern)
}

// Patterns returns the registered patterns ("GET /healthz", ...), sorted.
func (m *Mux) Patterns() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.patterns)
	slices.Sort(out)
	return out
}

// OpenAPIDocument is the OpenAPI 3 description of every HTTP endpoint
// cvmanager serves, hand-written so that it says what each answer means;
// a test checks it is valid and lists every route the controller mounts.
//
//go:embed openapi.json
var OpenAPIDocument []byte

// OpenAPIPath is where the document is served.
const OpenAPIPath = "/v1/openapi.json"

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPIDocument)
}
