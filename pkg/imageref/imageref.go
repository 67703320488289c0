package imageref

import "strings"

// NormalizeRepo writes a repository the one way cvmanager compares
// repositories: lower case (the reference grammar allows no upper case in a
// path, and hosts are case-insensitive), Docker Hub names with docker.io
// and, for official images, library/. Webhook pushes, spec.imageRepo and the
// images running in workloads all meet through it.
func NormalizeRepo(repo string) string {
	repo = strings.ToLower(repo)
	first, rest, found := strings.Cut(repo, "/")
	switch {
	case !found:
		return "docker.io/library/" + repo
	case !isRegistryHost(first):
		return "docker.io/" + repo
	case first == "index.docker.io" || first == "registry-1.docker.io":
		return NormalizeRepo(rest)
	case first == "docker.io" && !strings.Contains(rest, "/"):
		return "docker.io/library/" + rest
	}
	return repo
}

// HasRegistryHost reports whether an image reference starts with a
// registry host rather than a Docker Hub path.
func HasRegistryHost(image string) bool {
	first, _, found := strings.Cut(image, "/")
	return found && isRegistryHost(first)
}

// isRegistryHost decides as the Docker reference grammar does: a dot, a
// port or localhost makes the first path component a host.
func isRegistryHost(component string) bool {
	return strings.ContainsAny(component, ".:") || component == "localhost"
}
