package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"cvmanager.dev/cvmanager/pkg/state"
)

func TestOwnershipGuards(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	owned := func(cluster string, interval, ago time.Duration) *state.Manifest {
		return &state.Manifest{Owner: state.Owner{ClusterID: cluster, Identity: "pod-1",
			Heartbeat: now.Add(-ago), Interval: state.Duration(interval)}}
	}
	tests := []struct {
		name               string
		m                  *state.Manifest
		exportOK, importOK bool
	}{
		{"empty path", nil, true, true},
		{"own path", owned("me", time.Minute, 0), true, true},
		{"other cluster exporting now", owned("old", 30*time.Second, 20*time.Second), false, false},
		{"other cluster silent for 3 intervals", owned("old", 30*time.Second, 2*time.Minute), false, true},
		{"short interval still gets a minute", owned("old", 5*time.Second, 40*time.Second), false, false},
		{"other cluster's one-shot export", owned("old", 0, time.Second), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := state.CheckExport(tt.m, "me"); (err == nil) != tt.exportOK || (err != nil && !errors.Is(err, state.ErrOwned)) {
				t.Errorf("CheckExport = %v, want ok=%v", err, tt.exportOK)
			}
			if err := state.CheckImport(tt.m, "me", now); (err == nil) != tt.importOK || (err != nil && !errors.Is(err, state.ErrOwned)) {
				t.Errorf("CheckImport = %v, want ok=%v", err, tt.importOK)
			}
		})
	}
}

// TestClearAndListing: clear refuses while a live exporter owns the path,
// and the /v1/state listing says who owns it.
func TestClearAndListing(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	b, err := state.NewLocal(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if l := state.List(ctx, b, now); !l.Empty || l.Error != "" {
		t.Errorf("listing of an empty path: %+v", l)
	}
	m := state.Manifest{SchemaVersion: state.SchemaVersion, ClusterID: "old",
		Owner:   state.Owner{ClusterID: "old", Identity: "pod-1", Heartbeat: now, Interval: state.Duration(time.Minute)},
		Objects: []state.ObjectRef{{Namespace: "a", Name: "x", Key: "cvs/a/x.json"}}}
	data, _ := json.Marshal(m)
	for _, k := range []string{state.ManifestKey, "cvs/a/x.json"} {
		if _, err := b.Put(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	state.Handler(b).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/state", nil))
	var got state.Listing
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("/v1/state: %d %s (%v)", rec.Code, rec.Body, err)
	}
	want := state.Listing{Location: b.String(), Alive: true, Objects: 1}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(state.Listing{}, "Manifest", "Time")); diff != "" {
		t.Errorf("/v1/state (-want +got):\n%s", diff)
	}
	if err := state.Clear(ctx, b, false, now); !errors.Is(err, state.ErrOwned) {
		t.Fatalf("Clear under a live exporter = %v, want ErrOwned", err)
	}
	if err := state.Clear(ctx, b, false, now.Add(10*time.Minute)); err != nil {
		t.Fatalf("Clear once the exporter is silent: %v", err)
	}
	if list, _ := b.List(ctx, ""); len(list) != 0 {
		t.Errorf("left after Clear: %v", list)
	}
}
