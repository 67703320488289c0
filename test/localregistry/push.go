package localregistry

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Push uploads a new random image (one small layer) under every tag and
// returns its digest. Pushing a tag again moves it to new content (a
// re-push: same tag, new digest).
func (r *Registry) Push(path string, tags ...string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	for _, tag := range tags {
		ref, err := r.ref(path, tag)
		if err != nil {
			return "", err
		}
		if err := remote.Write(ref, img, r.remoteOptions()...); err != nil {
			return "", err
		}
	}
	return digest.String(), nil
}

// Platforms of the images PushIndex puts in its index.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// PushIndex uploads a new multi-arch image: an OCI index over one random
// image per entry of Platforms. It returns the index digest (what a tag
// resolves to) and the per-platform image digests.
func (r *Registry) PushIndex(path string, tags ...string) (string, []string, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var images []string
	for i := range Platforms {
		img, err := random.Image(256, 1)
		if err != nil {
			return "", nil, err
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		d, err := img.Digest()
		if err != nil {
			return "", nil, err
		}
		images = append(images, d.String())
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &Platforms[i]}})
	}
	digest, err := idx.Digest()
	if err != nil {
		return "", nil, err
	}
	for _, tag := range tags {
		ref, err := r.ref(path, tag)
		if err != nil {
			return "", nil, err
		}
		if err := remote.WriteIndex(ref, idx, r.remoteOptions()...); err != nil {
			return "", nil, err
		}
	}
	return digest.String(), images, nil
}

// MoveTag points tag at the image another tag (or digest reference) points
// to, as CI promotion does; it returns that image's digest.
func (r *Registry) MoveTag(path, tag, to string) (string, error) {
	src, err := r.ref(path, to)
	if err != nil {
		return "", err
	}
	desc, err := remote.Get(src, r.remoteOptions()...)
	if err != nil {
		return "", err
	}
	dst, err := r.ref(path, tag)
	if err != nil {
		return "", err
	}
	if err := remote.Tag(dst, desc, r.remoteOptions()...); err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}
