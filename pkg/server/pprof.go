package server

import (
	"net/http/pprof"
)

// RegisterPprof mounts Go's runtime profiles under /debug/pprof/ on mux.
//
// It is opt-in (`cvmanager run --enable-pprof`): a CPU profile costs the
// controller CPU while it runs and a heap or goroutine dump shows internals,
// so the endpoints exist only when an operator asks for them, on the same
// port as /metrics (which listens on 127.0.0.1 unless --bind-address says
// otherwise). The handlers are mounted explicitly rather than through the
// package's init side effect, which only touches http.DefaultServeMux.
func RegisterPprof(mux Router) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
