package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/klog/v2"
)

// OCIOptions configure the OCI/Docker v2 implementation.
type OCIOptions struct {
	// Transport carries every request (the controller passes its per-host
	// guard); nil means go-containerregistry's default transport.
	Transport http.RoundTripper
	// InsecureHosts are registry hosts reached over plain HTTP.
	InsecureHosts []string
	// Insecure reaches every registry over plain HTTP (CLI --insecure).
	Insecure bool
	// NoRetries turns off go-containerregistry's own retries: in the
	// controller the host guard backs off and the next poll retries, and a
	// retry storm is exactly what a rate-limited registry must not see.
	NoRetries bool
	// TagPageSize is the n of tags/list requests. The default is 1,000
	// (ECR's maximum; one request lists a repository of 1,000 tags), 100 for
	// Quay hosts (its maximum), and 100 for any host that refuses a page of
	// 1,000. MaxTagPages bounds the pages followed (default 100).
	TagPageSize, MaxTagPages int
	// VersionCacheRepos and VersionCacheTags bound the version tag →
	// digest cache: repositories kept, and tags per repository (defaults
	// 1,024 and 10,000).
	VersionCacheRepos, VersionCacheTags int
	// Cloud configures logins with GCP's and Azure's workload identities,
	// used when no static credential applies (see Auth.Provider).
	Cloud CloudOptions
	// KeepManifests says a reader will GET the manifest of every new digest
	// (the controller's image provenance): the version lookup then GETs the
	// first new version tag instead of HEADing it and keeps the body for
	// that read, so a new digest costs one request less and no more pulls.
	KeepManifests bool
}

// OCI implements Registry over the OCI/Docker v2 protocol.
type OCI struct {
	opts  OCIOptions
	cloud *cloudKeychain

	// base carries every request (baseTransport).
	base http.RoundTripper

	mu sync.Mutex
	// clients keep one authenticated client per repository and credential
	// set (clients.go), so the registry is pinged and a bearer token
	// fetched once per repository, not once per request or kind of request.
	clients map[string]*repoClient
	// pushers keep one authenticated pusher per credential set.
	pushers map[string]*remote.Pusher
	// smallPages are hosts that refused a page of 1,000 tags.
	smallPages map[string]bool
	// versions remembers the version tag of each digest, so a poll that
	// finds the digest unchanged costs one HEAD and no tag listing.
	versions map[string]string
	// tags remembers version tag → digest per repository, so a new digest
	// costs a listing and a HEAD per tag new since the last one.
	tags *versionTags
	// kept holds manifests the version lookup fetched (KeepManifests).
	kept keptManifests
}

// NewOCI returns the OCI/Docker v2 implementation.
func NewOCI(opts OCIOptions) *OCI {
	if opts.MaxTagPages <= 0 {
		opts.MaxTagPages = 100
	}
	o := &OCI{opts: opts, base: baseTransport(opts), clients: map[string]*repoClient{}, pushers: map[string]*remote.Pusher{},
		smallPages: map[string]bool{}, versions: map[string]string{},
		tags: newVersionTags(opts.VersionCacheRepos, opts.VersionCacheTags)}
	o.cloud = newCloudKeychain(opts.Cloud, configuredTransport(opts))
	return o
}

// repository parses a repository name, plain HTTP where configured.
func (o *OCI) repository(repo string) (name.Repository, error) {
	r, err := ParseRepository(repo, o.opts.Insecure)
	if err != nil || o.opts.Insecure || !slices.Contains(o.opts.InsecureHosts, r.RegistryStr()) {
		return r, err
	}
	return ParseRepository(repo, true)
}

func (o *OCI) tag(repo, tag string) (name.Tag, error) {
	r, err := o.repository(repo)
	if err != nil {
		return name.Tag{}, err
	}
	t, err := name.NewTag(r.Name()+":"+tag, nameOptions(r)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid tag %q for %s: %w", tag, repo, err)
	}
	return t, nil
}

func nameOptions(r name.Repository) []name.Option {
	if r.Scheme() == "http" {
		return []name.Option{name.Insecure}
	}
	return nil
}

// remoteOptions configure a pusher: go-containerregistry wraps the
// transport in its own retries unless NoRetries.
func (o *OCI) remoteOptions(auth authn.Authenticator) []remote.Option {
	opts := []remote.Option{remote.WithAuth(auth), remote.WithTransport(plainBase(o.opts))}
	if o.opts.NoRetries {
		opts = append(opts, remote.WithRetryPredicate(func(error) bool { return false }), remote.WithRetryStatusCodes())
	}
	return opts
}

func (o *OCI) pusher(reg name.Registry, a Auth) (*remote.Pusher, error) {
	auth, key, err := a.authenticator(reg, o.cloud)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if p, ok := o.pushers[key]; ok {
		return p, nil
	}
	p, err := remote.NewPusher(o.remoteOptions(auth)...)
	if err != nil {
		return nil, err
	}
	o.pushers[key] = p
	return p, nil
}

// head finds a tag's digest with HEAD, which Docker Hub does not count as a
// pull. Only when the registry leaves Docker-Content-Digest out does it GET
// the manifest and hash the body, and then only a body that is a manifest:
// the hash of a truncated or foreign body names no image, and rolling it out
// would leave every pod in ImagePullBackOff.
func head(ctx context.Context, p *remote.Puller, ref name.Reference) (*v1.Descriptor, error) {
	desc, err := p.Head(ctx, ref)
	if err == nil || !strings.Contains(err.Error(), "did not include Docker-Content-Digest") {
		return desc, err
	}
	full, err := p.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(full.Manifest); err != nil {
		return nil, fmt.Errorf("the registry sent no digest header and a body that is not a manifest: %w", err)
	}
	return &full.Descriptor, nil
}

// checkManifest accepts a schema 2 image manifest (a config with a digest)
// or an index (a manifests list); schema 1 is refused because its digest is
// not the hash of the body.
func checkManifest(body []byte) error {
	var m struct {
		SchemaVersion int              `json:"schemaVersion"`
		Config        *v1.Descriptor   `json:"config"`
		Manifests     *[]v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case m.SchemaVersion != 2:
		return fmt.Errorf("schemaVersion %d, want 2", m.SchemaVersion)
	case m.Manifests != nil:
		return nil
	case m.Config == nil || m.Config.Digest.Hex == "":
		return errors.New("neither an image manifest with a config digest nor an index")
	}
	return nil
}

// Resolve implements Registry.
func (o *OCI) Resolve(ctx context.Context, req ResolveRequest) (Image, error) {
	ref, err := o.tag(req.Name, req.Tag)
	if err != nil {
		return Image{}, err
	}
	p, err := o.puller(ctx, ref.Context(), req.Auth)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", req.Name, req.Tag, err)
	}
	desc, err := o.digestOf(ctx, p, ref, req.Digest)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", req.Name, req.Tag, err)
	}
	img := Image{Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	if req.VersionSyntax == nil || req.VersionSyntax.MatchString(req.Tag) {
		img.Version = PickVersion(req.Tag, nil, req.VersionSyntax)
		if img.Version != "" {
			o.observeVersion(ref.Context().Name(), req.Tag, img.Digest)
		}
		return img, nil
	}
	cacheKey := ref.Context().Name() + "@" + img.Digest + "|" + req.VersionSyntax.String()
	o.mu.Lock()
	version, known := o.versions[cacheKey]
	o.mu.Unlock()
	if known {
		img.Version = version
		return img, nil
	}
	if img.Version, err = o.findVersion(ctx, p, req, ref.Context(), desc.Digest); err != nil {
		return Image{}, err
	}
	o.mu.Lock()
	o.versions[cacheKey] = img.Version
	o.mu.Unlock()
	return img, nil
}

// digestOf is the tag's digest: the one the caller's HEAD just returned
// when it passes one (a new digest then costs no second HEAD of the tag),
// else a HEAD. A digest that does not parse is refused, not resolved
// around: it came from a registry answer that should have been checked.
func (o *OCI) digestOf(ctx context.Context, p *remote.Puller, ref name.Tag, known string) (*v1.Descriptor, error) {
	if known == "" {
		return head(ctx, p, ref)
	}
	h, err := v1.NewHash(known)
	if err != nil {
		return nil, fmt.Errorf("the digest passed for the tag: %w", err)
	}
	return &v1.Descriptor{Digest: h}, nil
}

// observeVersion records a version tag's digest seen by the ordinary poll
// of a CV that follows the version tag itself; a digest that differs from
// the remembered one means the "immutable" tag was re-pushed, which is
// logged and corrected here (docs/registries.md states the assumption).
func (o *OCI) observeVersion(repo, tag, digest string) {
	if previous := o.tags.observe(repo, tag, digest); previous != "" {
		klog.InfoS("A version tag was re-pushed to another image; its remembered digest is corrected",
			"repo", repo, "tag", tag, "was", previous, "now", digest)
	}
}

// findVersion finds which version tag carries digest, at a cost that does
// not grow with the repository's history. A tag already known to carry it
// (a push notification named it, or a HEAD found it) answers at no cost;
// otherwise one tag listing, then a HEAD
// only for version tags that are new since the last listing (newest
// first), stopping at the first match; tags whose digest is already known
// cost nothing. Only when none of those match (the followed tag moved back
// to an old image never HEADed, one evicted, or a re-pushed version tag)
// are the remaining tags HEADed, newest first.
func (o *OCI) findVersion(ctx context.Context, p *remote.Puller, req ResolveRequest, repo name.Repository, digest v1.Hash) (string, error) {
	if known := o.tags.carrying(repo.Name(), digest.String(), req.VersionSyntax); known != "" {
		return known, nil // announced by a push notification, or HEADed before
	}
	tags, err := o.ListTags(ctx, req.Repo)
	if err != nil {
		return "", err
	}
	var candidates []string
	for _, tag := range tags {
		if req.VersionSyntax.MatchString(tag) {
			candidates = append(candidates, tag)
		}
	}
	known, fresh, stale, others := o.tags.plan(repo.Name(), candidates, digest.String())
	if known != "" {
		return known, nil
	}
	if len(fresh) > 0 && o.opts.KeepManifests {
		tag, answered, err := o.getCandidate(ctx, p, repo, fresh[0], digest)
		if tag != "" || err != nil {
			return tag, err
		}
		if answered {
			fresh = fresh[1:]
		}
	}
	for _, tag := range slices.Concat(fresh, stale, others) {
		d, err := head(ctx, p, repo.Tag(tag))
		if isNotFound(err) {
			continue // deleted since the listing: not this one
		}
		if err != nil {
			// Not knowing is not "no version": an answer of "" would be
			// remembered for the digest. The poll is retried instead.
			return "", fmt.Errorf("finding the version tag of %s@%s: %w", repo.Name(), digest, err)
		}
		o.observeVersion(repo.Name(), tag, d.Digest.String())
		if d.Digest == digest {
			return tag, nil
		}
	}
	return "", nil
}

// getCandidate asks for the newest new version tag with a GET instead of
// a HEAD: it is usually the tag pushed with the digest, whose manifest the
// provenance read GETs next anyway, so the body is kept for that read
// (OCI.Manifest) and the pull is the same one. The body's digest is its
// sha256, so a body kept is the manifest of digest, never a guess; a body
// that is not a manifest (schema 1, garbage) answers nothing and the tag is
// HEADed with the rest. It returns tag when the tag carries digest, and
// whether the tag was answered for (a 404 or another digest is an answer).
func (o *OCI) getCandidate(ctx context.Context, p *remote.Puller, repo name.Repository, tag string, digest v1.Hash) (string, bool, error) {
	full, err := p.Get(ctx, repo.Tag(tag))
	if isNotFound(err) {
		return "", true, nil // deleted since the listing: not this one
	}
	if err != nil {
		return "", false, fmt.Errorf("finding the version tag of %s@%s: %w", repo.Name(), digest, err)
	}
	if checkManifest(full.Manifest) != nil {
		return "", false, nil
	}
	o.observeVersion(repo.Name(), tag, full.Digest.String())
	if full.Digest != digest {
		return "", true, nil
	}
	o.kept.put(repo.Name()+"@"+digest.String(), p, Manifest{Body: full.Manifest, Descriptor: full.Descriptor})
	return tag, true, nil
}

// isNotFound is a registry's 404 (a tag deleted since it was listed).
func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// ObserveTag records that tag of repo points to digest, as a verified push
// notification said (pkg/trigger): a resolve that then meets digest finds
// its version tag without listing or HEADing anything. Repositories that do
// not parse are ignored.
func (o *OCI) ObserveTag(repo, tag, digest string) {
	r, err := o.repository(repo)
	if err != nil || tag == "" || digest == "" {
		return
	}
	// Every pushed tag is recorded, the followed (moving) ones too: which
	// are version tags depends on each CV's versionSyntax, applied when
	// the cache is read. So a moved tag here is no news, and not logged.
	o.tags.observe(r.Name(), tag, digest)
}

// TagsOf implements Registry. The v2 protocol has no "tags of a digest"
// call, so it lists the tags and HEADs each one.
func (o *OCI) TagsOf(ctx context.Context, repo Repo, tag string) (Image, error) {
	ref, err := o.tag(repo.Name, tag)
	if err != nil {
		return Image{}, err
	}
	p, err := o.puller(ctx, ref.Context(), repo.Auth)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, tag, err)
	}
	desc, err := head(ctx, p, ref)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, tag, err)
	}
	all, err := o.ListTags(ctx, repo)
	if err != nil {
		return Image{}, err
	}
	img := Image{Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	for _, t := range all {
		if d, err := head(ctx, p, ref.Context().Tag(t)); err == nil && d.Digest == desc.Digest {
			img.Tags = append(img.Tags, t)
		}
	}
	sort.Strings(img.Tags)
	return img, nil
}

// AddTags implements Registry: the manifest's exact bytes and media type are
// PUT under each new tag, so the digest stays the same and no layer moves.
func (o *OCI) AddTags(ctx context.Context, repo Repo, version string, tags []string) (Image, error) {
	src, err := o.tag(repo.Name, version)
	if err != nil {
		return Image{}, err
	}
	p, err := o.puller(ctx, src.Context(), repo.Auth)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, version, err)
	}
	desc, err := p.Get(ctx, src)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, version, err)
	}
	manifest := rawManifest{bytes: desc.Manifest, desc: desc.Descriptor}
	push, err := o.pusher(src.Context().Registry, repo.Auth)
	if err != nil {
		return Image{}, err
	}
	for _, tag := range tags {
		dst, err := o.tag(repo.Name, tag)
		if err != nil {
			return Image{}, err
		}
		if err := push.Put(ctx, dst, manifest); err != nil {
			return Image{}, fmt.Errorf("tagging %s:%s as %s: %w", repo.Name, version, tag, err)
		}
	}
	return Image{Digest: desc.Digest.String(), MediaType: string(desc.MediaType), Version: version}, nil
}

// RemoveTags implements Registry. Plain v2 registries can delete a manifest,
// which would take every tag on the image with it, so removing a single tag
// is refused rather than risked.
func (o *OCI) RemoveTags(_ context.Context, repo Repo, tags []string) error {
	if _, err := o.repository(repo.Name); err != nil {
		return err
	}
	return fmt.Errorf("removing tags %s from %s: %w (the v2 API can only delete the manifest, which would remove every tag on the image)",
		strings.Join(tags, ","), repo.Name, ErrNotSupported)
}

// rawManifest hands go-containerregistry a manifest to PUT as it is.
type rawManifest struct {
	bytes []byte
	desc  v1.Descriptor
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.bytes, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.desc.MediaType, nil }
func (m rawManifest) Digest() (v1.Hash, error)            { return m.desc.Digest, nil }
func (m rawManifest) Size() (int64, error)                { return int64(len(m.bytes)), nil }
