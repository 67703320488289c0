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
