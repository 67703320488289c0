// Package registry is cvmanager's one view of container registries: resolve
// a repo:tag to its digest and version tag, list tags, add tags to an image
// and remove tags.
//
// Implementations:
//   - OCI speaks the OCI/Docker v2 protocol through go-containerregistry
//     (Docker Hub, GHCR, Quay, Harbor, local registries). Digests are checked
//     with HEAD (a HEAD is not a pull on Docker Hub); GET only when a registry
//     leaves out Docker-Content-Digest. Retag is manifest GET → PUT.
//   - ECR uses the ECR API (DescribeImages, BatchGetImage → PutImage,
//     BatchDeleteImage) with the AWS SDK's default credential chain, and a
//     cached GetAuthorizationToken for registry-protocol calls.
//   - Hub is OCI plus tag removal through Docker Hub's own API, which the v2
//     protocol lacks.
//
// Cloud identities (cloud.go, acr.go): Artifact Registry and GCR log in with
// Google's Application Default Credentials, ACR with a Microsoft Entra token
// exchanged for an ACR refresh token; chosen by host or Auth.Provider.
//
// Router picks the implementation from the repository's host. The package
// knows nothing of Kubernetes objects or work queues; pull secrets arrive as
// raw .dockerconfigjson payloads in Auth.
package registry

import (
	"context"
	"errors"
	"regexp"
)

// Registry is what the rest of cvmanager uses to talk to a registry.
type Registry interface {
	// Resolve tells where repo:tag points now and, given a versionSyntax,
	// which of the image's tags is its version.
	Resolve(ctx context.Context, req ResolveRequest) (Image, error)
	// ListTags lists every tag of the repository.
	ListTags(ctx context.Context, repo Repo) ([]string, error)
	// TagsOf returns the image a tag points to with all of its tags.
	TagsOf(ctx context.Context, repo Repo, tag string) (Image, error)
	// AddTags puts tags on the image that version points to, without
	// pulling its layers; it returns that image.
	AddTags(ctx context.Context, repo Repo, version string, tags []string) (Image, error)
	// RemoveTags removes tags (never the image they point to). Registries
	// that cannot remove a single tag return an error wrapping
	// ErrNotSupported.
	RemoveTags(ctx context.Context, repo Repo, tags []string) error
}

// Repo names a repository and how to authenticate to it.
type Repo struct {
	// Name is the full repository, e.g. "ghcr.io/team/app",
	// "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", "nginx".
	Name string
	Auth Auth
}

// Auth selects credentials. The first that applies wins: Username, then
// PullSecrets (for the repository's host), then the Docker config when
// DockerConfig is set, then the cloud identity of the Provider (GCP's
// Application Default Credentials, Azure's DefaultAzureCredential), else
// anonymous access. ECR ignores it and uses the AWS SDK's default
// credential chain.
type Auth struct {
	// Provider names the cloud whose identity logs in; ProviderAuto picks it
	// from the host (*.pkg.dev, gcr.io: GCP; *.azurecr.io: Azure; ECR: AWS).
	// Generic turns cloud identities off; AWS needs an ECR host.
	Provider           Provider
	Username, Password string
	// PullSecrets are .dockerconfigjson payloads (Kubernetes pull secrets).
	PullSecrets [][]byte
	// DockerConfig reads ~/.docker/config.json (or $DOCKER_CONFIG), with its
	// credential helpers, as the docker CLI would. CLI use only.
	DockerConfig bool
}

// ResolveRequest asks where a tag points.
type ResolveRequest struct {
	Repo
	Tag string
	// VersionSyntax picks the version tag among the image's tags; nil means
	// no version is wanted.
	VersionSyntax *regexp.Regexp
	// Digest, when set, is the tag's digest as a request made a moment ago
	// answered (the controller's digest-only poll): only its version tag is
	// looked up, and the tag is not asked for again. Implementations that
	// cannot look up a version by digest ignore it and resolve the tag.
	Digest string
}

// Image is a manifest (or index) in a repository.
type Image struct {
	// Digest is "sha256:…" of the manifest or, for multi-arch images, the index.
	Digest string
	// MediaType is the manifest's media type when known.
	MediaType string
	// Version is the tag matching the request's VersionSyntax, "" if none.
	Version string
	// Tags are all tags on the image; only TagsOf and ECR's Resolve fill it.
	Tags []string
}

// ErrNotSupported marks operations a registry cannot do.
var ErrNotSupported = errors.New("not supported by this registry")
