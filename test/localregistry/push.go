package localregistry

import (
	"time"

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
	return r.pushImage(path, img, tags)
}

// PushAnnotated uploads a new random OCI image whose manifest carries
// annotations and whose config carries labels and created (empty: Go's
// zero time), as buildx and ko write provenance; it returns its digest.
func (r *Registry) PushAnnotated(path string, annotations, labels map[string]string, created string, tags ...string) (string, error) {
	img, err := annotatedImage(annotations, labels, created)
	if err != nil {
		return "", err
	}
	return r.pushImage(path, img, tags)
}

func annotatedImage(annotations, labels map[string]string, created string) (v1.Image, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = labels
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return nil, err
		}
		cfg.Created = v1.Time{Time: t}
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	if len(annotations) > 0 {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	return img, nil
}

// PushAnnotatedIndex uploads a new multi-arch OCI index carrying
// indexAnnotations over one image per entry of Platforms: the linux/amd64
// one has labels, the others a different revision label; it returns the
// index digest.
func (r *Registry) PushAnnotatedIndex(path string, indexAnnotations, labels map[string]string, tags ...string) (string, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i := range Platforms {
		platformLabels := labels
		if Platforms[i].Architecture != "amd64" { // a reader that picks this entry is caught
			platformLabels = map[string]string{"org.opencontainers.image.revision": "not-" + Platforms[i].Architecture}
		}
		img, err := annotatedImage(nil, platformLabels, "")
		if err != nil {
			return "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &Platforms[i]}})
	}
	if len(indexAnnotations) > 0 {
		idx = mutate.Annotations(idx, indexAnnotations).(v1.ImageIndex)
	}
	return r.pushIndex(path, idx, tags)
}

// pushIndex writes idx under every tag and returns its digest.
func (r *Registry) pushIndex(path string, idx v1.ImageIndex, tags []string) (string, error) {
	digest, err := idx.Digest()
	if err != nil {
		return "", err
	}
	for _, tag := range tags {
		ref, err := r.ref(path, tag)
		if err != nil {
			return "", err
		}
		if err := remote.WriteIndex(ref, idx, r.remoteOptions()...); err != nil {
			return "", err
		}
	}
	return digest.String(), nil
}

// pushImage writes img under every tag and returns its digest.
func (r *Registry) pushImage(path string, img v1.Image, tags []string) (string, error) {
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
	digest, err := r.pushIndex(path, idx, tags)
	return digest, images, err
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
