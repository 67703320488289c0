package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultHubURL is Docker Hub's own API (not the v2 registry protocol).
const DefaultHubURL = "https://hub.docker.com"

// HubOptions configure the Docker Hub implementation.
type HubOptions struct {
	// URL is the Hub API base; "" means DefaultHubURL. Tests point it at a
	// local stand-in.
	URL string
	// HTTPClient carries Hub API calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Hub is Docker Hub: the v2 protocol for everything but tag removal, which
// only Hub's own API offers (log in for a JWT, then DELETE the tag).
type Hub struct {
	*OCI
	opts HubOptions
}

// NewHub returns the Docker Hub implementation over oci.
func NewHub(oci *OCI, opts HubOptions) *Hub {
	if opts.URL == "" {
		opts.URL = DefaultHubURL
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	opts.URL = strings.TrimSuffix(opts.URL, "/")
	return &Hub{OCI: oci, opts: opts}
}

// RemoveTags implements Registry through the Hub API. It needs a user and a
// password or personal access token allowed to delete.
func (h *Hub) RemoveTags(ctx context.Context, repo Repo, tags []string) error {
	r, err := ParseRepository(repo.Name, false)
	if err != nil {
		return err
	}
	user, password, err := hubCredentials(repo.Auth, r.Registry)
	if err != nil {
		return fmt.Errorf("removing tags from %s: %w", repo.Name, err)
	}
	jwt, err := h.login(ctx, user, password)
	if err != nil {
		return fmt.Errorf("removing tags from %s: %w", repo.Name, err)
	}
	for _, tag := range tags {
		if err := h.deleteTag(ctx, jwt, r.RepositoryStr(), tag); err != nil {
			return fmt.Errorf("removing tag %s:%s: %w", repo.Name, tag, err)
		}
	}
	return nil
}

// hubCredentials picks user and password as for the registry (flags, pull
// secret, Docker config): the Hub API logs in with the same account.
func hubCredentials(a Auth, reg name.Registry) (string, string, error) {
	auth, _, err := a.authenticator(reg, nil)
	if err != nil {
		return "", "", err
	}
	cfg, err := auth.Authorization()
	if err != nil {
		return "", "", err
	}
	if cfg.Username == "" || cfg.Password == "" {
		return "", "", fmt.Errorf("Docker Hub's API needs --username and --password (a personal access token allowed to delete), or a docker login")
	}
	return cfg.Username, cfg.Password, nil
}

// login exchanges user and password for the JWT the Hub API takes.
func (h *Hub) login(ctx context.Context, user, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.URL+"/v2/users/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		Token string `json:"token"`
	}
	if err := h.do(req, http.StatusOK, &out); err != nil {
		return "", fmt.Errorf("Docker Hub login as %s: %w", user, err)
	}
	if out.Token == "" {
		return "", fmt.Errorf("Docker Hub login as %s returned no token", user)
	}
	return out.Token, nil
}

func (h *Hub) deleteTag(ctx context.Context, jwt, repository, tag string) error {
	u := h.opts.URL + "/v2/repositories/" + repository + "/tags/" + url.PathEscape(tag) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	return h.do(req, http.StatusNoContent, nil)
}

// do sends req and decodes a JSON answer; any status but want (or 200) is an
// error quoting the Hub's message.
func (h *Hub) do(req *http.Request, want int, out any) error {
	resp, err := h.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}
