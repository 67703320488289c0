// Package registrytest holds registry stand-ins shared by tests and the
// registry layer's end-to-end economy tests.
package registrytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// HubAPI stands in for the two Docker Hub API calls cvmanager uses to remove
// a tag: POST /v2/users/login ({username, password} → {token}) and
// DELETE /v2/repositories/<namespace>/<repo>/tags/<tag>/ with
// "Authorization: Bearer <token>". Docker Hub cannot be reached from the
// machines the tests run on; this follows the calls' documented shape.
type HubAPI struct {
	// URL is the base to pass as the Hub API URL.
	URL string

	server             *httptest.Server
	username, password string

	mu     sync.Mutex
	tokens map[string]bool
	tags   map[string]bool // "<namespace>/<repo>:<tag>" that exist
	logins int
}

// StartHubAPI serves the stand-in for one account; tags lists the
// "<namespace>/<repo>:<tag>" that exist.
func StartHubAPI(username, password string, tags ...string) *HubAPI {
	h := &HubAPI{username: username, password: password, tokens: map[string]bool{}, tags: map[string]bool{}}
	for _, t := range tags {
		h.tags[t] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/users/login", h.login)
	mux.HandleFunc("DELETE /v2/repositories/{namespace}/{repo}/tags/{tag}/", h.deleteTag)
	h.server = httptest.NewServer(mux)
	h.URL = h.server.URL
	return h
}

// Close stops the stand-in.
func (h *HubAPI) Close() { h.server.Close() }

// Has tells whether "<namespace>/<repo>:<tag>" still exists.
func (h *HubAPI) Has(tag string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tags[tag]
}

// Logins counts successful logins.
func (h *HubAPI) Logins() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logins
}

func (h *HubAPI) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Username != h.username || in.Password != h.password {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"detail":"Incorrect authentication credentials"}`))
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	h.mu.Lock()
	h.tokens[token] = true
	h.logins++
	h.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
}

func (h *HubAPI) deleteTag(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ok || !h.tokens[token] {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"detail":"Authentication credentials were not provided"}`))
		return
	}
	key := r.PathValue("namespace") + "/" + r.PathValue("repo") + ":" + r.PathValue("tag")
	if !h.tags[key] {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"tag not found"}`))
		return
	}
	delete(h.tags, key)
	w.WriteHeader(http.StatusNoContent)
}
