package registry

import (
	"errors"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/test/registrytest"
)

// TestHubRemovesTagsThroughItsAPI runs against a local stand-in for Docker
// Hub's login and delete-tag calls: Hub itself cannot be reached from here.
func TestHubRemovesTagsThroughItsAPI(t *testing.T) {
	api := registrytest.StartHubAPI("ci", "pat-123", "team/app:env-prod", "team/app:env-stage", "library/nginx:old")
	defer api.Close()
	hub := NewHub(insecureOCI(), HubOptions{URL: api.URL})
	ctx := testContext(t)
	if err := hub.RemoveTags(ctx, Repo{Name: "team/app", Auth: Auth{Username: "ci", Password: "pat-123"}}, []string{"env-prod", "env-stage"}); err != nil {
		t.Fatal(err)
	}
	if api.Has("team/app:env-prod") || api.Has("team/app:env-stage") {
		t.Error("tags still there")
	}
	if err := hub.RemoveTags(ctx, Repo{Name: "docker.io/nginx", Auth: Auth{Username: "ci", Password: "pat-123"}}, []string{"old"}); err != nil || api.Has("library/nginx:old") {
		t.Errorf("official image (library/ prefix): %v", err)
	}
	cases := []struct {
		name string
		auth Auth
		tag  string
		want string
	}{
		{"wrong password", Auth{Username: "ci", Password: "wrong"}, "x", "Incorrect authentication"},
		{"no credentials", Auth{}, "x", "needs --username and --password"},
		{"missing tag", Auth{Username: "ci", Password: "pat-123"}, "nope", "team/app:nope"},
	}
	for _, tc := range cases {
		err := hub.RemoveTags(ctx, Repo{Name: "team/app", Auth: tc.auth}, []string{tc.tag})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "team/app") {
			t.Errorf("%s: %v, want it to mention %q and the repo", tc.name, err, tc.want)
		}
	}
	if errors.Is(hub.RemoveTags(ctx, Repo{Name: "team/app", Auth: Auth{Username: "ci", Password: "pat-123"}}, nil), ErrNotSupported) {
		t.Error("Hub removal must not be reported unsupported")
	}
}
