package rollout

import (
	"strings"

	"cvmanager.dev/cvmanager/pkg/imageref"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// checkRepos refuses the rollout when a selected workload's container runs
// a fully qualified image (with a registry host) from another repository
// than spec.imageRepo: writing the CV's image there would silently replace
// a different application. A short name without a registry host (a
// placeholder such as "app:v0") is adopted, as the original kcd did.
func checkRepos(workloads []workload.Workload, container, imageRepo string) (Progress, bool) {
	want := imageref.NormalizeRepo(imageRepo)
	for _, w := range workloads {
		image, found := workload.ContainerImage(w, container)
		if !found || !imageref.HasRegistryHost(image) {
			continue
		}
		if got := imageref.NormalizeRepo(repoOf(image)); got != want {
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
