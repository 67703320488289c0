package rollout

import (
	"testing"

	"cvmanager.dev/cvmanager/pkg/imageref"
)

func TestRepoOfAndNormalize(t *testing.T) {
	same := []struct{ image, repo string }{
		{"nginx:1.25", "nginx"},
		{"docker.io/library/nginx@sha256:abc", "library/nginx"},
		{"index.docker.io/team/app:v1", "team/app"},
		{"127.0.0.1:5000/team/app:v1@sha256:abc", "127.0.0.1:5000/team/app"},
		{"Reg.io/Team/App", "reg.io/team/app"},
	}
	for _, tc := range same {
		if got, want := imageref.NormalizeRepo(repoOf(tc.image)), imageref.NormalizeRepo(tc.repo); got != want {
			t.Errorf("%s: %s, want %s", tc.image, got, want)
		}
	}
	differ := []struct{ image, repo string }{
		{"registry.invalid/other/app:1.0", "127.0.0.1:5000/team/app"},
		{"ghcr.io/team/app:v1", "team/app"},
		{"localhost/app:v1", "app"},
	}
	for _, tc := range differ {
		if imageref.NormalizeRepo(repoOf(tc.image)) == imageref.NormalizeRepo(tc.repo) {
			t.Errorf("%s taken for an image of %s", tc.image, tc.repo)
		}
	}
	if imageref.HasRegistryHost("placeholder:v0") || !imageref.HasRegistryHost("localhost:5000/app") {
		t.Error("hasRegistryHost")
	}
}
