package provenance

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPlatformManifest(t *testing.T) {
	entry := func(name, os, arch string) v1.Descriptor {
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Annotations: map[string]string{"name": name},
			Platform: &v1.Platform{OS: os, Architecture: arch}}
	}
	attestation := entry("attestation", "unknown", "unknown")
	noPlatform := v1.Descriptor{MediaType: types.OCIManifestSchema1, Annotations: map[string]string{"name": "none"}}
	nested := entry("nested", "linux", "amd64")
	nested.MediaType = types.OCIImageIndex
	tests := []struct {
		name    string
		entries []v1.Descriptor
		want    string // "" = none
	}{
		{"linux/amd64 wins wherever it is", []v1.Descriptor{entry("arm", "linux", "arm64"), entry("amd", "linux", "amd64")}, "amd"},
		{"else the first real platform", []v1.Descriptor{attestation, noPlatform, entry("arm", "linux", "arm64"), entry("s390x", "linux", "s390x")}, "arm"},
		{"attestations and nested indexes are skipped", []v1.Descriptor{attestation, nested}, ""},
		{"empty index", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := platformManifest(tt.entries)
			if name := got.Annotations["name"]; name != tt.want || ok != (tt.want != "") {
				t.Errorf("picked %q (ok %v), want %q", name, ok, tt.want)
			}
		})
	}
}
