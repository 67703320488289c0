package registry

import (
	"context"
	"errors"
	"time"

	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

// CreatedReader tells when the image a tag points to was built.
// `cvmanager release --branch` orders a branch's versions by it;
// provenance.CreatedReader reads it from the image's provenance.
type CreatedReader interface {
	Created(ctx context.Context, repo Repo, tag string) (time.Time, error)
}

// IsNotFound reports whether err is a registry's "no such manifest or
// tag" answer, so callers can name what is missing instead of passing a
// protocol error on.
func IsNotFound(err error) bool {
	var ecrImage *ecrtypes.ImageNotFoundException
	return errors.Is(notFound(err), ErrNotFound) || errors.As(err, &ecrImage)
}
