package rollout

import (
	"strings"

	"cvmanager.dev/cvmanager/pkg/workload"
)

// checkRepos refuses the rollout when a selected workload's container runs
// a fully qualified image (with a registry host) from another repository
// than spec.imageRepo: writing the CV's image there would silently replace
// a different application. A short name without a registry host (a
// placeholder such as "app:v0") is adopted, as the original kcd did.
func checkRepos(workloads []workload.Workload, container, imageRepo string) (Progress, bool) {
	want := normalizeRepo(imageRepo)
	for _, w := range workloads {
		image, found := workload.ContainerImage(w, container)
		if !found || !hasRegistryHost(image) {
			continue
		}
		if got := normalizeRepo(repoOf(image)); got != want {
			return misconfigured("RepoMismatch",
				"container %q in %s runs %s, not an image of spec.imageRepo %s; nothing was changed",
				container, w.Key(), image, imageRepo), false
		}
	}
	return Progress{}, true
}

// repoOf strips the digest and the tag from an image reference.
func repoOf(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// hasRegistryHost reports whether the first path component names a
// registry (a dot, a port or localhost), as the Docker reference grammar
// decides it.
func hasRegistryHost(image string) bool {
	first, _, found := strings.Cut(image, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// normalizeRepo makes Docker Hub's spellings of one repository equal:
// "app", "library/app", "docker.io/library/app", "index.docker.io/…".
func normalizeRepo(repo string) string {
	repo = strings.ToLower(repo)
	if !hasRegistryHost(repo) {
		if !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
		return "docker.io/" + repo
	}
	if rest, ok := strings.CutPrefix(repo, "index.docker.io/"); ok {
		repo = "docker.io/" + rest
	}
	if rest, ok := strings.CutPrefix(repo, "docker.io/"); ok && !strings.Contains(rest, "/") {
		repo = "docker.io/library/" + rest
	}
	return repo
}
