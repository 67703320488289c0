package state

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Listing is what a state path holds: where it is, who owns it, and the
// CVs its latest manifest names. It is the /v1/state answer and the output
// of `cvmanager state show`.
type Listing struct {
	Location string    `json:"location"`
	Empty    bool      `json:"empty"`
	Manifest *Manifest `json:"manifest,omitempty"`
	// Alive says whether the owner is a continuous exporter that wrote
	// recently (see Owner.Alive).
	Alive   bool      `json:"ownerAlive"`
	Objects int       `json:"objects"`
	Error   string    `json:"error,omitempty"`
	Time    time.Time `json:"time"`
}

// List reads the backend's manifest. The manifest names every CV object,
// so one read answers without listing the bucket. A read failure is
// reported in Error rather than returned, so callers can show it.
func List(ctx context.Context, b Backend, now time.Time) Listing {
	out := Listing{Location: b.String(), Time: now}
	m, err := ReadManifest(ctx, b)
	switch {
	case err != nil:
		out.Error = err.Error()
	case m == nil:
		out.Empty = true
	default:
		out.Manifest, out.Alive, out.Objects = m, m.Owner.Alive(now), len(m.Objects)
	}
	return out
}

// Handler serves GET /v1/state, a read-only JSON view of what the backend
// holds (the original release manager had /releases). A backend that
// cannot be read answers 502 with the reason.
func Handler(b Backend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		out := List(r.Context(), b, time.Now())
		status := http.StatusOK
		if out.Error != "" {
			status = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
