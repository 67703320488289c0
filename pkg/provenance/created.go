package provenance

import (
	"context"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// CreatedReader tells when an image was built from its provenance (the
// org.opencontainers.image.created annotation or label, else the config's
// own created time), so `cvmanager release --branch` and the views agree on
// an image's age. It costs what Read costs, so callers ask only for
// candidates.
type CreatedReader struct{ Reader registry.ArtifactReader }

var _ registry.CreatedReader = CreatedReader{}

// Created implements registry.CreatedReader. An image that says nothing,
// or says it in another format than RFC 3339, gives the zero time: it
// sorts as oldest.
func (c CreatedReader) Created(ctx context.Context, repo registry.Repo, tag string) (time.Time, error) {
	p, err := Read(ctx, c.Reader, repo, tag)
	if err != nil {
		return time.Time{}, err
	}
	created, err := time.Parse(time.RFC3339, p.Created)
	if err != nil {
		return time.Time{}, nil
	}
	return created, nil
}
