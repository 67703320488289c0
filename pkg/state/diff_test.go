package state

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiffFields(t *testing.T) {
	exported := map[string]any{
		"metadata": map[string]any{"name": "web", "labels": map[string]any{"app": "web"}},
		"spec":     map[string]any{"replicas": float64(2), "ports": []any{map[string]any{"port": float64(80)}}},
	}
	exported["metadata"].(map[string]any)["annotations"] = nil
	live := map[string]any{
		"metadata": map[string]any{"name": "web", "labels": map[string]any{"app": "web", "tier": "front"}, "annotations": map[string]any{"team": "a"}},
		"spec":     map[string]any{"replicas": float64(3), "ports": []any{map[string]any{"port": float64(8080)}}},
	}
	if diff := cmp.Diff([]string{"metadata.annotations.team", "metadata.labels.tier", "spec.ports", "spec.replicas"}, DiffFields(live, exported)); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if got := DiffFields(exported, exported); len(got) != 0 {
		t.Errorf("identical manifests differ in %v", got)
	}
	if got, want := differsDetail([]string{"spec.replicas"}), "exists, differs from the export in spec.replicas: left unchanged"; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
}
