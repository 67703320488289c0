package registry

import "testing"

// TestIsNotFound: a missing tag is a not-found error callers can name.
func TestIsNotFound(t *testing.T) {
	reg := startRegistry(t)
	push(t, reg, "team/app", "present")
	r := Repo{Name: reg.Repo("team/app")}
	if _, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: r, Tag: "missing"}); !IsNotFound(err) {
		t.Errorf("resolving a missing tag: %v, want a not-found error", err)
	}
	if _, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: r, Tag: "present"}); err != nil || IsNotFound(err) {
		t.Errorf("resolving a present tag: %v", err)
	}
}
