// Package server is cvmanager's HTTP surface: health and readiness probes,
// Prometheus metrics and the version. The dashboard and trigger endpoints
// mount on the same mux.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cvmanager.dev/cvmanager/pkg/version"
)

// Readiness reports what /readyz needs to know.
type Readiness struct {
	// Synced reports whether the informer caches are filled.
	Synced func() bool
	// Leader reports whether this replica holds the leader lease.
	Leader func() bool
}

// NewMux returns the handler with the probe, metrics, version and OpenAPI
// routes; it records every route mounted on it later (Mux.Patterns).
func NewMux(gatherer prometheus.Gatherer, ready Readiness) *Mux {
	mux := NewRecordingMux()
	alive := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("GET /healthz", alive)
	mux.HandleFunc("GET /alive", alive) // the original cvmanager's probe path
	mux.HandleFunc("GET /readyz", readyz(ready))
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(version.Get())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+OpenAPIPath, serveOpenAPI)
	return mux
}

// readyz answers 200 once the caches are synced, and 503 before. Every
// replica keeps its caches warm, leader or not, and serves the reads from
// them, so a standby is ready exactly when its caches are: the Service then
// sends it only requests it answers correctly. The leader state is in the
// body for operators.
func readyz(ready Readiness) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		synced := ready.Synced == nil || ready.Synced()
		leader := ready.Leader != nil && ready.Leader()
		w.Header().Set("Content-Type", "application/json")
		if !synced {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]bool{"informersSynced": synced, "leader": leader})
	}
}

// Serve runs the HTTP server until ctx is done, then shuts it down
// gracefully. With tlsFiles set it serves HTTPS only (TLS 1.2 or later).
func Serve(ctx context.Context, addr string, handler http.Handler, tlsFiles TLSFiles) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	useTLS, err := tlsFiles.Enabled()
	if err != nil {
		return err
	}
	if useTLS {
		cert, err := newReloadingCertificate(tlsFiles)
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if useTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	return serveUntilDone(ctx, srv, ln)
}

func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
