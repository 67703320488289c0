package localregistry

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushPlatformIndex uploads a new OCI index with one random image per
// platform given (e.g. arm64 only, to test the platform gate) and returns
// the index digest.
func (r *Registry) PushPlatformIndex(path string, platforms []v1.Platform, tags ...string) (string, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i := range platforms {
		img, err := random.Image(256, 1)
		if err != nil {
			return "", err
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platforms[i]}})
	}
	return r.pushIndex(path, idx, tags)
}
