package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ArtifactReader reads what sits beside an image in its repository:
// signatures and attestations (pkg/verify). It goes through the same
// authenticated clients as Resolve, so credentials, cached bearer tokens and
// the per-host budget apply to these requests too.
type ArtifactReader interface {
	// Manifest GETs a manifest by tag or digest; a missing one is an error
	// wrapping ErrNotFound.
	Manifest(ctx context.Context, repo Repo, ref string) (Manifest, error)
	// Blob GETs a blob by digest, at most limit bytes, checked against the
	// digest.
	Blob(ctx context.Context, repo Repo, digest string, limit int64) ([]byte, error)
	// Referrers lists the manifests whose subject is digest (OCI 1.1
	// referrers API, or its sha256-<hex> tag fallback).
	Referrers(ctx context.Context, repo Repo, digest string) ([]v1.Descriptor, error)
}

// Manifest is a manifest's exact bytes and descriptor.
type Manifest struct {
	Body       []byte
	Descriptor v1.Descriptor
}

// ErrNotFound marks a manifest or blob the registry does not have.
var ErrNotFound = errors.New("not found")

// Manifest implements ArtifactReader.
func (o *OCI) Manifest(ctx context.Context, repo Repo, ref string) (Manifest, error) {
	r, err := o.repository(repo.Name)
	if err != nil {
		return Manifest{}, err
	}
	parsed, err := name.ParseReference(r.Name()+refSeparator(ref)+ref, nameOptions(r)...)
	if err != nil {
		return Manifest{}, fmt.Errorf("invalid reference %q for %s: %w", ref, repo.Name, err)
	}
	p, err := o.puller(ctx, r, repo.Auth)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", parsed, err)
	}
	if m, ok := o.kept.take(r.Name()+"@"+ref, p); ok {
		return m, nil // GET by the version lookup a moment ago (getCandidate)
	}
	desc, err := p.Get(ctx, parsed)
	if err != nil {
		return Manifest{}, notFound(fmt.Errorf("%s: %w", parsed, err))
	}
	return Manifest{Body: desc.Manifest, Descriptor: desc.Descriptor}, nil
}

// Blob implements ArtifactReader.
func (o *OCI) Blob(ctx context.Context, repo Repo, digest string, limit int64) ([]byte, error) {
	d, p, err := o.digestRef(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	layer, err := p.Layer(ctx, d)
	if err != nil {
		return nil, notFound(err)
	}
	rc, err := layer.Compressed() // the blob as stored; its digest is checked while read
	if err != nil {
		return nil, notFound(fmt.Errorf("%s: %w", d, err))
	}
	defer func() { _ = rc.Close() }()
	body, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", d, limit)
	}
	return body, nil
}

// Referrers implements ArtifactReader.
func (o *OCI) Referrers(ctx context.Context, repo Repo, digest string) ([]v1.Descriptor, error) {
	d, p, err := o.digestRef(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	index, err := remote.Referrers(d, remote.WithContext(ctx), remote.Reuse(p))
	if err != nil {
		if errors.Is(notFound(err), ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	m, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	return m.Manifests, nil
}

func (o *OCI) digestRef(ctx context.Context, repo Repo, digest string) (name.Digest, *remote.Puller, error) {
	r, err := o.repository(repo.Name)
	if err != nil {
		return name.Digest{}, nil, err
	}
	d, err := name.NewDigest(r.Name()+"@"+digest, nameOptions(r)...)
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("invalid digest %q for %s: %w", digest, repo.Name, err)
	}
	p, err := o.puller(ctx, r, repo.Auth)
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("%s: %w", d, err)
	}
	return d, p, nil
}

func refSeparator(ref string) string {
	if len(ref) > 7 && ref[:7] == "sha256:" {
		return "@"
	}
	return ":"
}

// notFound wraps ErrNotFound around a registry's 404 answer.
func notFound(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Manifest implements ArtifactReader. Every host is read over the registry
// protocol; ECR with its cached authorization token.
func (r *Router) Manifest(ctx context.Context, repo Repo, ref string) (Manifest, error) {
	repo, err := r.artifactRepo(ctx, repo)
	if err != nil {
		return Manifest{}, err
	}
	return r.OCI.Manifest(ctx, repo, ref)
}

// Blob implements ArtifactReader.
func (r *Router) Blob(ctx context.Context, repo Repo, digest string, limit int64) ([]byte, error) {
	repo, err := r.artifactRepo(ctx, repo)
	if err != nil {
		return nil, err
	}
	return r.OCI.Blob(ctx, repo, digest, limit)
}

// Referrers implements ArtifactReader.
func (r *Router) Referrers(ctx context.Context, repo Repo, digest string) ([]v1.Descriptor, error) {
	repo, err := r.artifactRepo(ctx, repo)
	if err != nil {
		return nil, err
	}
	return r.OCI.Referrers(ctx, repo, digest)
}

// artifactRepo gives an ECR repository the Basic credentials of its
// authorization token; other repositories keep their own Auth.
func (r *Router) artifactRepo(ctx context.Context, repo Repo) (Repo, error) {
	if _, isECR := r.For(repo.Name).(*ECR); !isECR {
		return repo, nil
	}
	a, err := r.ECR.Authenticator(ctx, repo.Name)
	if err != nil {
		return repo, err
	}
	cfg, err := a.Authorization()
	if err != nil {
		return repo, err
	}
	repo.Auth = Auth{Username: cfg.Username, Password: cfg.Password}
	return repo, nil
}
