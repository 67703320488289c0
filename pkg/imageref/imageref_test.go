package imageref

import (
	"strings"
	"testing"
)

func TestNormalizeRepo(t *testing.T) {
	cases := map[string]string{
		"nginx":                          "docker.io/library/nginx",
		"acme/web":                       "docker.io/acme/web",
		"docker.io/nginx":                "docker.io/library/nginx",
		"index.docker.io/acme/web":       "docker.io/acme/web",
		"registry-1.docker.io/library/x": "docker.io/library/x",
		"reg.local:5000/team/api":        "reg.local:5000/team/api",
		"localhost/app":                  "localhost/app",
		"ghcr.io/org/app":                "ghcr.io/org/app",
		"Reg.io/Team/App":                "reg.io/team/app",
	}
	for in, want := range cases {
		if got := NormalizeRepo(in); got != want {
			t.Errorf("NormalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalizeRepo: normalising twice changes nothing (webhook pushes and
// CVs are compared after normalising both), and a name never loses its
// last path element.
func FuzzNormalizeRepo(f *testing.F) {
	for _, seed := range []string{"nginx", "acme/web", "docker.io/nginx", "index.docker.io/acme/web", "registry-1.docker.io/library/x",
		"reg.local:5000/team/api", "localhost/app", "", "/", "docker.io/", "index.docker.io", "index.docker.io/index.docker.io/x", "a//b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, repo string) {
		once := NormalizeRepo(repo)
		if twice := NormalizeRepo(once); twice != once {
			t.Fatalf("NormalizeRepo not idempotent: %q -> %q -> %q", repo, once, twice)
		}
		last := strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
		if !strings.HasSuffix(once, last) {
			t.Fatalf("NormalizeRepo(%q) = %q lost %q", repo, once, last)
		}
	})
}
