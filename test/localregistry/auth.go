package localregistry

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // access controller
	"golang.org/x/crypto/bcrypt"
)

// Option configures Start.
type Option func(*settings)

type settings struct {
	htpasswd, token    bool
	username, password string
	tokenTTL           time.Duration
	// accept admits more logins to the token server (WithTokenLogins).
	accept func(user, password string) bool
	// hostName and handlers: see WithHostName and WithHandler.
	hostName string
	handlers map[string]http.Handler
	// notify is the notification endpoint of WithNotifications.
	notify *configuration.Endpoint
	// log receives the registry's log (WithLog); nil discards it.
	log io.Writer
}

// WithHtpasswd protects the registry with Distribution's htpasswd access
// controller: Basic auth with one user.
func WithHtpasswd(username, password string) Option {
	return func(s *settings) { s.htpasswd, s.username, s.password = true, username, password }
}

// WithTokenAuth protects the registry with Distribution's token access
// controller and starts a small token server beside it, as Docker Hub, GHCR
// and Harbor work: the registry answers 401 with a Bearer challenge, the
// client fetches a JWT for the scope from the token server (Basic auth with
// this user) and retries with it. ttl is the tokens' expires_in (0: 300 s).
func WithTokenAuth(username, password string, ttl time.Duration) Option {
	return func(s *settings) {
		s.token, s.username, s.password, s.tokenTTL = true, username, password, ttl
	}
}

// WithTokenLogins makes the token server of WithTokenAuth also accept the
// logins accept admits, such as a cloud stand-in's current token: tests of
// cloud identities prove the registry was reached with that token. An
// anonymous token request asks accept("", "").
func WithTokenLogins(accept func(user, password string) bool) Option {
	return func(s *settings) { s.accept = accept }
}

// WithHostName serves the registry under a DNS name (e.g. "app.pkg.dev")
// resolved to 127.0.0.1 by Registry.Transport: Repo names and the token
// realm use "<name>:<port>", so host-based choices (cloud providers) apply.
func WithHostName(hostName string) Option {
	return func(s *settings) { s.hostName = hostName }
}

// WithHandler serves h at path beside the registry (a stand-in for a
// registry's own extra endpoints, e.g. ACR's /oauth2/exchange).
func WithHandler(path string, h http.Handler) Option {
	return func(s *settings) {
		if s.handlers == nil {
			s.handlers = map[string]http.Handler{}
		}
		s.handlers[path] = h
	}
}

// WithNotifications makes the registry send its own push notifications
// (Distribution's notifications endpoint) to url with headers, as a
// registry configured to call cvmanager's /v1/webhooks/distribution does.
// Only manifest pushes are sent: pulls, mounts, deletes and blob events are
// ignored, so every poll does not cost a notification. Delivery is the
// registry's: one event per POST, in order, retried on failure.
func WithNotifications(url string, headers http.Header) Option {
	return func(s *settings) {
		s.notify = &configuration.Endpoint{
			Name: "notify", URL: url, Headers: headers, Timeout: 5 * time.Second, Threshold: 3, Backoff: time.Second,
			Ignore: configuration.Ignore{
				Actions:    []string{"pull", "mount", "delete"},
				MediaTypes: []string{"application/octet-stream", "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.container.image.v1+json"},
			},
		}
	}
}

// configureAuth writes the files the access controller reads into dir and
// sets cfg.Auth; it returns the token server, if any, served by the
// registry itself at baseURL + "/token": go-containerregistry refuses token
// realms on loopback or private addresses other than the registry's own
// host:port (an SSRF guard).
func configureAuth(cfg *configuration.Configuration, s settings, dir, baseURL string) (*TokenServer, error) {
	switch {
	case s.htpasswd:
		hash, err := bcrypt.GenerateFromPassword([]byte(s.password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(s.username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "localregistry", "path": path}}
	case s.token:
		ts, err := newTokenServer(baseURL, s.username, s.password, s.tokenTTL)
		if err != nil {
			return nil, err
		}
		ts.accept = s.accept
		path := filepath.Join(dir, "jwks.json")
		if err := os.WriteFile(path, ts.jwks(), 0o600); err != nil {
			return nil, err
		}
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm": ts.URL + "/token", "service": tokenService, "issuer": tokenIssuer, "jwks": path,
		}}
		return ts, nil
	}
	return nil, nil
}

const (
	tokenService = "localregistry"
	tokenIssuer  = "localregistry-token-server"
	tokenKeyID   = "localregistry-key"
)

// TokenServer issues Ed25519-signed JWTs granting what a scope asks for, to
// one user (Basic auth); anonymous or wrong credentials get 401. The
// registry serves it at /token.
type TokenServer struct {
	// URL is the registry's "http://127.0.0.1:<port>"; tokens are at URL/token.
	URL      string
	key      ed25519.PrivateKey
	username string
	password string
	ttl      time.Duration
	accept   func(user, password string) bool

	mu     sync.Mutex
	issued map[string]int
}

func newTokenServer(baseURL, username, password string, ttl time.Duration) (*TokenServer, error) {
	if ttl <= 0 {
		ttl = 300 * time.Second
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &TokenServer{URL: baseURL, key: key, username: username, password: password, ttl: ttl, issued: map[string]int{}}, nil
}

// Issued counts tokens issued for a scope ("repository:team/app:pull");
// Issued("") counts all.
func (ts *TokenServer) Issued(scope string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if scope != "" {
		return ts.issued[scope]
	}
	total := 0
	for _, n := range ts.issued {
		total += n
	}
	return total
}

// ServeHTTP answers token requests.
func (ts *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, _ := r.BasicAuth() // none: "", "" (anonymous)
	if !ts.admits(user, pass) {
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
		return
	}
	scopes := r.URL.Query()["scope"]
	token, err := ts.sign(user, scopes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.issued[strings.Join(scopes, " ")]++
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": token, "access_token": token, "expires_in": int(ts.ttl.Seconds()), "issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// admits says whether a login may have tokens: the configured user, or
// one WithTokenLogins accepts.
func (ts *TokenServer) admits(user, pass string) bool {
	if user != "" && user == ts.username && pass == ts.password {
		return true
	}
	return ts.accept != nil && ts.accept(user, pass)
}

// sign makes a JWT granting every action each scope names.
func (ts *TokenServer) sign(subject string, scopes []string) (string, error) {
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	grants := []access{}
	for _, scope := range scopes {
		for _, one := range strings.Fields(scope) {
			parts := strings.Split(one, ":")
			if len(parts) < 3 {
				continue
			}
			grants = append(grants, access{Type: parts[0], Name: strings.Join(parts[1:len(parts)-1], ":"), Actions: strings.Split(parts[len(parts)-1], ",")})
		}
	}
	now := time.Now()
	header, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": tokenKeyID})
	claims, _ := json.Marshal(map[string]any{
		"iss": tokenIssuer, "sub": subject, "aud": tokenService, "exp": now.Add(ts.ttl).Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"iat": now.Unix(), "jti": fmt.Sprintf("%d", now.UnixNano()), "access": grants,
	})
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	return signingInput + "." + enc.EncodeToString(ed25519.Sign(ts.key, []byte(signingInput))), nil
}

// jwks is the key set the registry trusts: the server's public key.
func (ts *TokenServer) jwks() []byte {
	pub := ts.key.Public().(ed25519.PublicKey)
	data, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub), "kid": tokenKeyID, "use": "sig", "alg": "EdDSA",
	}}})
	return data
}
