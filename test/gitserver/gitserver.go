// Package gitserver serves a bare git repository over smart HTTP on
// 127.0.0.1 with Debian's git-http-backend behind Go's net/http/cgi and
// basic auth, refusing non-fast-forward pushes as a protected branch does.
// It is the real git server the end-to-end tests and the bench write back
// to; the git binary seeds the repository (the product itself uses go-git).
package gitserver

import (
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Backend is where Debian's git package installs git-http-backend.
const Backend = "/usr/lib/git-core/git-http-backend"

// Server is one bare repository "deploy.git" with branch main, served at
// URL to User with Password.
type Server struct {
	// URL is the repository's clone URL.
	URL string
	// Bare is the served repository's directory: reading it sees exactly
	// what the next fetch through URL sees.
	Bare           string
	User, Password string
	srv            *httptest.Server
}

// Start creates the repository under root (an empty directory the caller
// removes), commits files (path → content) to main as its first commit,
// and serves it.
func Start(root, user, password string, files map[string]string) (*Server, error) {
	if _, err := os.Stat(Backend); err != nil {
		return nil, fmt.Errorf("%s missing: install Debian's git package (make git)", Backend)
	}
	s := &Server{Bare: filepath.Join(root, "deploy.git"), User: user, Password: password}
	if err := Seed(root, s.Bare, files); err != nil {
		return nil, err
	}
	handler := &cgi.Handler{Path: Backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, req)
	}))
	s.URL = s.srv.URL + "/deploy.git"
	return s, nil
}

// Close stops serving; the repository stays on disk for the caller.
func (s *Server) Close() { s.srv.Close() }

// Git runs git in dir and returns its output.
func Git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Seed makes the bare repository bare (its seed clone goes beside it in
// root), accepting pushes over HTTP but refusing non-fast-forward pushes
// and branch deletions as a protected branch does, with files as main's
// first commit.
func Seed(root, bare string, files map[string]string) error {
	work := filepath.Join(root, "seed-"+filepath.Base(bare))
	steps := [][]string{
		{root, "init", "-q", "--bare", "-b", "main", bare},
		{bare, "config", "http.receivepack", "true"},
		{bare, "config", "receive.denyNonFastForwards", "true"},
		{bare, "config", "receive.denyDeletes", "true"},
		{root, "clone", "-q", bare, work},
	}
	for _, s := range steps {
		if _, err := Git(s[0], s[1:]...); err != nil {
			return err
		}
	}
	for path, content := range files {
		full := filepath.Join(work, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"add", "-A"},
		{"-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-m", "seed"},
		{"push", "origin", "HEAD:main"}} {
		if _, err := Git(work, args...); err != nil {
			return err
		}
	}
	return nil
}
