package state

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Backend.Get for a key the backend does not hold.
var ErrNotFound = errors.New("state: object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is relative to the backend's path, with "/" separators.
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// Backend stores state objects under one path. Keys are relative to that
// path. Implementations must make Put atomic for readers (a reader sees the
// old or the new object, never a partial one).
type Backend interface {
	// Put stores data under key and returns the object's version id when
	// the backend keeps versions (S3 with versioning on), else "".
	Put(ctx context.Context, key string, data []byte) (version string, err error)
	// Get reads key, at version when one is given; a missing key is ErrNotFound.
	Get(ctx context.Context, key, version string) ([]byte, error)
	// List returns every object under prefix, following all pages.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes keys; missing keys are not an error.
	Delete(ctx context.Context, keys []string) error
	// Clear removes everything under the path, every version included.
	Clear(ctx context.Context) error
	// String names the location for messages, e.g. "s3://bucket/prefix".
	String() string
}
