package poller

import (
	"context"
	"regexp"
	"time"
)

// ResolveRequest asks where a tag points now.
type ResolveRequest struct {
	Repo string
	Tag  string
	// VersionSyntax picks the version tag among the image's tags.
	VersionSyntax *regexp.Regexp
	// MaxAge lets the shared poller answer from a result younger than this,
	// so N CVs on one repo:tag cost one registry request per interval. Zero
	// forces a fresh request (push triggers).
	MaxAge time.Duration
	// PullSecrets are .dockerconfigjson payloads to authenticate with.
	PullSecrets [][]byte
	// Provider is the CV's spec.provider: the cloud whose identity logs in
	// when no pull secret applies ("" chooses by host).
	Provider string
	// Digest is the tag's digest as a digest-only request just answered:
	// the registry layer then looks up only its version tag, without a
	// second HEAD of the tag (registry.ResolveRequest.Digest).
	Digest string
}

// ResolvedImage is what the tag points to.
type ResolvedImage struct {
	Digest string
	// Version is the tag matching VersionSyntax, or "" when none does.
	Version string
}

// ImageResolver is the registry layer as syncers see it.
type ImageResolver interface {
	Resolve(ctx context.Context, req ResolveRequest) (ResolvedImage, error)
}
