package writeback

import (
	"bytes"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cvmanager.dev/cvmanager/test/gitserver"
)

// gitserver.Backend is where Debian's git keeps its smart-HTTP CGI program.

// gitServer is a real git server for tests: bare repositories under a
// temporary root, served over smart HTTP by git-http-backend through
// net/http/cgi on 127.0.0.1, with basic auth. Pushes that are not
// fast-forwards are refused (receive.denyNonFastForwards), as a protected
// branch would be, so a force push would show up as a failure.
type gitServer struct {
	t          *testing.T
	root       string
	srv        *httptest.Server
	user, pass string

	mu sync.Mutex
	// beforeReceive, when set, runs once before the next receive-pack POST
	// is served: the moment between a writer's fetch and its push.
	beforeReceive func()
	receives      int
	posts         []string // "service repo" of each POST
}

// needGit fails the test loudly when Debian's git is missing (`make git`
// installs it; `make test` does so first); with -short it skips instead.
func needGit(t *testing.T) {
	t.Helper()
	_, errBackend := os.Stat(gitserver.Backend)
	_, errGit := exec.LookPath("git")
	if errBackend == nil && errGit == nil {
		return
	}
	if testing.Short() {
		t.Skipf("git or %s not installed (make git)", gitserver.Backend)
	}
	t.Fatalf("git or %s not installed: run make git (apt-get install git)", gitserver.Backend)
}

func newGitServer(t *testing.T) *gitServer { t.Helper(); return startGitServer(t, false) }

// newTLSGitServer serves HTTPS with httptest's certificate (caPEM).
func newTLSGitServer(t *testing.T) (*gitServer, []byte) {
	t.Helper()
	s := startGitServer(t, true)
	return s, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

func startGitServer(t *testing.T, useTLS bool) *gitServer {
	t.Helper()
	needGit(t)
	s := &gitServer{t: t, root: t.TempDir(), user: "writer", pass: "s3cret-Pa55word"}
	// The backend's stderr ("cannot lock ref" on a refused push) is noise
	// here: the tests check the outcome.
	backend := &cgi.Handler{Path: gitserver.Backend, Env: []string{"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1"}, Stderr: io.Discard}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			s.mu.Lock()
			hook := s.beforeReceive
			s.beforeReceive = nil
			s.receives++
			s.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		// git-http-backend enables receive-pack for authenticated users.
		r2 := r.Clone(r.Context())
		r2.Header.Del("Authorization")
		h := *backend
		h.Env = append(append([]string(nil), backend.Env...), "REMOTE_USER="+u)
		h.ServeHTTP(w, r2)
	}))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in tests
	if useTLS {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
	return s
}

// git runs the git binary (test side only) in dir.
func (s *gitServer) git(dir string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=seed@localhost",
		"GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=seed@localhost", "GIT_CONFIG_NOSYSTEM=1", "HOME="+s.root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// newRepo creates a bare repository name.git whose branch main holds files.
func (s *gitServer) newRepo(name string, files map[string]string) string {
	s.t.Helper()
	if err := gitserver.Seed(s.root, s.bare(name), files); err != nil {
		s.t.Fatal(err)
	}
	return s.srv.URL + "/" + name + ".git"
}

// bare is the path of a repository on disk.
func (s *gitServer) bare(name string) string { return filepath.Join(s.root, name+".git") }

// show reads a file at a ref of a repository.
func (s *gitServer) show(name, ref, path string) string {
	s.t.Helper()
	return s.git(s.bare(name), "show", ref+":"+path)
}

// commits counts the commits reachable from ref.
func (s *gitServer) commits(name, ref string) int {
	s.t.Helper()
	out := s.git(s.bare(name), "rev-list", "--count", ref)
	n := 0
	for _, c := range out {
		n = n*10 + int(c-'0')
	}
	return n
}

// pushOther commits a change to path from a separate clone and pushes it:
// another writer.
func (s *gitServer) pushOther(name, path, content string) {
	s.t.Helper()
	work := s.t.TempDir()
	s.git(work, "clone", "-q", s.bare(name), ".")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(work, path)), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, path), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.git(work, "add", "-A")
	s.git(work, "commit", "-q", "-m", "another writer")
	s.git(work, "push", "-q", "origin", "main")
}

// gitStdin runs git with stdin in dir and returns its trimmed output.
func (s *gitServer) gitStdin(dir, stdin string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
