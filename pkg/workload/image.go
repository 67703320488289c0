package workload

import (
	"fmt"
	"regexp"
	"strings"
)

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// PinnedImage is the reference written into pod templates: repo:version@digest,
// or repo@digest without a version. The digest makes the kubelet run exactly
// the image resolved (a re-pushed tag redeploys); the version keeps it
// readable. Never repo:sha256:…, which is not a valid reference.
func PinnedImage(repo, version, digest string) (string, error) {
	if !digestPattern.MatchString(digest) {
		return "", fmt.Errorf("invalid digest %q: want sha256:<64 hex>", digest)
	}
	if strings.ContainsAny(repo, "@") || repo == "" {
		return "", fmt.Errorf("invalid repository %q", repo)
	}
	if version == "" {
		return repo + "@" + digest, nil
	}
	return repo + ":" + version + "@" + digest, nil
}

// DigestOf returns the @sha256:… part of an image reference, or "".
func DigestOf(image string) string {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return digest
	}
	return ""
}

// SameImage reports whether two references name the same image: equal, or
// the same repository pinned at the same digest, whatever tag either
// carries. A GitOps tool that applies repo@sha256:… (Kustomize's digest
// field) runs exactly what cvmanager wrote as repo:v1@sha256:….
func SameImage(a, b string) bool {
	if a == b {
		return true
	}
	da, db := DigestOf(a), DigestOf(b)
	return da != "" && da == db && repositoryOf(a) == repositoryOf(b)
}

// repositoryOf is a reference's repository: without its digest, and
// without a tag (a colon after the last slash; one before it is a port).
func repositoryOf(image string) string {
	name, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(name, "/")
	if colon := strings.LastIndex(name, ":"); colon > slash {
		name = name[:colon]
	}
	return name
}
