package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrateGolden: the original's manifest gets the new apiVersion and a
// matchLabels selector; other documents pass unchanged; a manifest already
// migrated is kept as it is.
func TestMigrateGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "migrate", "original.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "migrate", "migrated.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := MigrateManifests(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("migrate (-want +got):\n%s", diff)
	}
	again, err := MigrateManifests(got)
	if err != nil || string(again) != string(got) {
		t.Errorf("migrating twice changed the output: %v\n%s", err, again)
	}
}

func TestMigrateRefusesAmbiguousSelectors(t *testing.T) {
	cases := map[string]string{
		"kind: ContainerVersion\nspec:\n  selector:\n    app: web\n    matchLabels: {a: b}\n": "mixes matchLabels",
		"kind: ContainerVersion\nspec:\n  selector:\n    replicas: 3\n":                       "a label value must be a string",
		"kind: ContainerVersion\nspec: [\n":                                                   "document 1",
	}
	for in, want := range cases {
		if _, err := MigrateManifests([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("MigrateManifests(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
