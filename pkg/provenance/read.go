// Package provenance reads where an image was built from: the OCI
// annotations of its manifest (or index) and the labels of its image
// config. The controller reads them once per new digest through the
// registry layer's ArtifactReader (shared credentials, token cache and
// per-host budget) and shows them in status, history, the dashboard, the
// CLI and notifications.
//
// Keys read (annotations win over labels with the same key; the config's
// own "created" field is the fallback for Created):
//
//	org.opencontainers.image.revision  → Revision
//	org.opencontainers.image.source    → Source
//	org.opencontainers.image.created   → Created
//	org.opencontainers.image.authors   → Authors
//	org.opencontainers.image.url       → URL
//	dev.cvmanager.image.ci-url         → CILink
//
// Cost per new digest: one manifest GET and one config blob GET for an
// image; for an index one more manifest GET (the linux/amd64 entry, else
// the first runnable one). Nothing is read for a digest already cached.
package provenance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// Keys of the annotations and labels read. CIURLKey is cvmanager's own: no
// OCI key names the CI run that built an image, and CI systems know it at
// build time (e.g. GitHub's $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID).
const (
	RevisionKey = "org.opencontainers.image.revision"
	SourceKey   = "org.opencontainers.image.source"
	CreatedKey  = "org.opencontainers.image.created"
	AuthorsKey  = "org.opencontainers.image.authors"
	URLKey      = "org.opencontainers.image.url"
	CIURLKey    = "dev.cvmanager.image.ci-url"
)

// maxConfigBytes bounds the image config read: configs are a few KiB, and a
// hostile repository must not make the controller read without end.
const maxConfigBytes = 4 << 20

// Lengths of the status fields (the CRD's MaxLength): longer values are
// clipped so a status write never fails on an image's labels.
const (
	maxShort = 256
	maxText  = 1024
	maxURL   = 2048
)

// Read fetches digest's manifest (and, for an index, one platform's) and
// its config, and merges their provenance keys.
func Read(ctx context.Context, reader registry.ArtifactReader, repo registry.Repo, digest string) (cvv1.Provenance, error) {
	m, err := reader.Manifest(ctx, repo, digest)
	if err != nil {
		return cvv1.Provenance{}, err
	}
	var indexAnnotations map[string]string
	if m.Descriptor.MediaType.IsIndex() {
		index, err := v1.ParseIndexManifest(bytes.NewReader(m.Body))
		if err != nil {
			return cvv1.Provenance{}, fmt.Errorf("parsing index %s: %w", digest, err)
		}
		indexAnnotations = index.Annotations
		child, ok := platformManifest(index.Manifests)
		if !ok {
			return Merge(indexAnnotations, nil, ""), nil
		}
		if m, err = reader.Manifest(ctx, repo, child.Digest.String()); err != nil {
			return cvv1.Provenance{}, err
		}
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(m.Body))
	if err != nil {
		return cvv1.Provenance{}, fmt.Errorf("parsing manifest of %s: %w", digest, err)
	}
	labels, created, err := readConfig(ctx, reader, repo, manifest.Config)
	if err != nil {
		return cvv1.Provenance{}, err
	}
	return Merge(overlay(manifest.Annotations, indexAnnotations), labels, created), nil
}

// platformManifest picks the entry whose config is read: linux/amd64 when
// the index has it, else the first entry with a real platform, else the
// first image entry that names no platform (attestation entries say
// unknown/unknown and are never picked).
func platformManifest(entries []v1.Descriptor) (v1.Descriptor, bool) {
	var first, unnamed *v1.Descriptor
	for i := range entries {
		p := entries[i].Platform
		switch {
		case !entries[i].MediaType.IsImage() || p != nil && p.OS == "unknown":
			continue
		case p == nil:
			if unnamed == nil {
				unnamed = &entries[i]
			}
		case p.OS == "linux" && p.Architecture == "amd64":
			return entries[i], true
		case first == nil:
			first = &entries[i]
		}
	}
	if first == nil {
		first = unnamed
	}
	if first == nil {
		return v1.Descriptor{}, false
	}
	return *first, true
}

// readConfig returns the config's labels and created time.
func readConfig(ctx context.Context, reader registry.ArtifactReader, repo registry.Repo, d v1.Descriptor) (map[string]string, string, error) {
	if d.Digest.String() == "" || d.Digest.Hex == "" {
		return nil, "", nil
	}
	body, err := reader.Blob(ctx, repo, d.Digest.String(), maxConfigBytes)
	if err != nil {
		return nil, "", fmt.Errorf("reading config %s: %w", d.Digest, err)
	}
	var cfg struct {
		Created string `json:"created"`
		Config  struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return nil, "", fmt.Errorf("parsing config %s: %w", d.Digest, err)
	}
	return cfg.Config.Labels, cfg.Created, nil
}

// overlay returns base with top's entries on top (top wins).
func overlay(base, top map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(top))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Merge is the provenance of an image with these manifest annotations,
// config labels and config created time: annotations win over labels, and
// created is the fallback for Created.
func Merge(annotations, labels map[string]string, created string) cvv1.Provenance {
	pick := func(key string, limit int) string {
		v := annotations[key]
		if v == "" {
			v = labels[key]
		}
		return clip(v, limit)
	}
	p := cvv1.Provenance{
		Revision: pick(RevisionKey, maxText),
		Source:   pick(SourceKey, maxURL),
		Created:  pick(CreatedKey, maxShort),
		Authors:  pick(AuthorsKey, maxText),
		URL:      pick(URLKey, maxURL),
		CILink:   pick(CIURLKey, maxURL),
	}
	if p.Created == "" && created != zeroTime {
		p.Created = clip(created, maxShort)
	}
	return p
}

// zeroTime is how an image config without a build time says "created"
// (Go's zero time); it is not shown.
const zeroTime = "0001-01-01T00:00:00Z"

// clip shortens s to at most limit bytes on a rune boundary.
func clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Empty reports whether p says nothing.
func Empty(p cvv1.Provenance) bool { return p == cvv1.Provenance{} }

// ShortRevision shortens a commit hash (12 or more hex digits) to 7, as
// git does; other revisions stay as they are.
func ShortRevision(rev string) string {
	if len(rev) < 12 || strings.Trim(strings.ToLower(rev), "0123456789abcdef") != "" {
		return rev
	}
	return rev[:7]
}

// WebURL returns u when it is an absolute http(s) URL, the only kind a view
// may turn into a link (never javascript: or data:), else "".
func WebURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
		return ""
	}
	return u
}
