package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"cvmanager.dev/cvmanager/pkg/anchored"
)

// Kind is the family of API a registry host speaks beyond plain v2.
type Kind int

const (
	// KindOCI is any OCI/Docker v2 registry.
	KindOCI Kind = iota
	// KindECR is Amazon ECR (<account>.dkr.ecr.<region>.amazonaws.com).
	KindECR
	// KindDockerHub is Docker Hub, which removes tags through its own API.
	KindDockerHub
)

// DefaultVersionSyntax picks a git SHA (short or full) among an image's tags,
// as the original cvmanager did.
const DefaultVersionSyntax = "[0-9a-f]{5,40}"

// ecrHost matches ECR registry hosts, FIPS and China partitions included.
var ecrHost = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ParseRepository parses a repository name with go-containerregistry's
// reference parser: registry ports, Docker Hub's implicit "index.docker.io"
// and "library/" prefix. A name carrying a tag or digest is refused with a
// message saying so, since callers pass tags separately.
func ParseRepository(repo string, insecure bool) (name.Repository, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(repo, opts...)
	if err == nil {
		return r, nil
	}
	// Only a tag or a digest makes a valid reference an invalid repository.
	if _, refErr := name.ParseReference(repo, opts...); refErr == nil {
		return name.Repository{}, fmt.Errorf("repository %q must be a repository without tag or digest", repo)
	}
	return name.Repository{}, fmt.Errorf("invalid repository %q: %w", repo, err)
}

// KindOf tells which implementation serves a registry host.
func KindOf(host string) Kind {
	switch {
	case ecrHost.MatchString(host):
		return KindECR
	case slices.Contains([]string{name.DefaultRegistry, "docker.io", "registry-1.docker.io"}, host):
		return KindDockerHub
	default:
		return KindOCI
	}
}

// ECRLocation is where an ECR repository lives.
type ECRLocation struct {
	Account, Region, Repository string
}

// ParseECR reads account, region and repository from
// "<account>.dkr.ecr.<region>.amazonaws.com/<repository>".
func ParseECR(repo string) (ECRLocation, error) {
	host, path, ok := strings.Cut(repo, "/")
	m := ecrHost.FindStringSubmatch(host)
	if !ok || m == nil || path == "" {
		return ECRLocation{}, fmt.Errorf("%q is not an ECR repository (<account>.dkr.ecr.<region>.amazonaws.com/<name>)", repo)
	}
	if strings.ContainsAny(path, ":@") {
		return ECRLocation{}, fmt.Errorf("repository %q must be a repository without tag or digest", repo)
	}
	return ECRLocation{Account: m[1], Region: m[2], Repository: path}, nil
}

// CompileVersionSyntax compiles a versionSyntax anchored at both ends, as the
// original cvmanager did; "" means DefaultVersionSyntax.
func CompileVersionSyntax(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		expr = DefaultVersionSyntax
	}
	re, err := anchored.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid versionSyntax %q: %w", expr, err)
	}
	return re, nil
}

// PickVersion chooses the version tag among an image's tags: the watched tag
// itself when it matches (it names the image exactly), otherwise the
// smallest matching tag so the choice never depends on listing order.
func PickVersion(tag string, tags []string, syntax *regexp.Regexp) string {
	if syntax == nil {
		return ""
	}
	if syntax.MatchString(tag) {
		return tag
	}
	version := ""
	for _, t := range tags {
		if syntax.MatchString(t) && (version == "" || t < version) {
			version = t
		}
	}
	return version
}
