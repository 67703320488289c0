package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CreatedReader tells when the image a tag points to was built: the
// `created` of its config blob. `cvmanager release --branch` orders a
// branch's versions by it. It is the one place that reads image configs
// for that purpose.
type CreatedReader interface {
	Created(ctx context.Context, repo Repo, tag string) (time.Time, error)
}

// maxConfigBytes bounds a config blob read; real configs are a few KiB.
const maxConfigBytes = 4 << 20

// ConfigCreated reads `created` through an ArtifactReader: the manifest
// (for a multi-arch index, its first image's manifest), then the config
// blob. Two or three GETs per tag, so callers read it only for candidates.
type ConfigCreated struct{ Reader ArtifactReader }

// Created implements CreatedReader. An image without `created` gives the
// zero time, not an error: it sorts as oldest.
func (c ConfigCreated) Created(ctx context.Context, repo Repo, tag string) (time.Time, error) {
	m, err := c.Reader.Manifest(ctx, repo, tag)
	if err != nil {
		return time.Time{}, err
	}
	if m.Descriptor.MediaType.IsIndex() {
		index, err := v1.ParseIndexManifest(bytes.NewReader(m.Body))
		if err != nil || len(index.Manifests) == 0 {
			return time.Time{}, fmt.Errorf("%s:%s: unreadable image index: %v", repo.Name, tag, err)
		}
		if m, err = c.Reader.Manifest(ctx, repo, index.Manifests[0].Digest.String()); err != nil {
			return time.Time{}, err
		}
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(m.Body))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s:%s: unreadable manifest: %w", repo.Name, tag, err)
	}
	blob, err := c.Reader.Blob(ctx, repo, manifest.Config.Digest.String(), maxConfigBytes)
	if err != nil {
		return time.Time{}, err
	}
	var config struct {
		Created *time.Time `json:"created"`
	}
	if err := json.Unmarshal(blob, &config); err != nil {
		return time.Time{}, fmt.Errorf("%s:%s: unreadable image config: %w", repo.Name, tag, err)
	}
	if config.Created == nil {
		return time.Time{}, nil
	}
	return *config.Created, nil
}

// IsNotFound reports whether err is a registry's "no such manifest or
// tag" answer, so callers can name what is missing instead of passing a
// protocol error on.
func IsNotFound(err error) bool {
	var ecrImage *ecrtypes.ImageNotFoundException
	return errors.Is(notFound(err), ErrNotFound) || errors.As(err, &ecrImage)
}
