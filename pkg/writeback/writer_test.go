package writeback

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// collector gathers reports by key.
type collector struct {
	mu   sync.Mutex
	got  map[string][]cvv1.WriteBackStatus
	cond *sync.Cond
}

func newCollector() *collector {
	c := &collector{got: map[string][]cvv1.WriteBackStatus{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *collector) report(key string, st cvv1.WriteBackStatus) {
	c.mu.Lock()
	c.got[key] = append(c.got[key], st)
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wait returns the n-th report (1-based) for key, failing after a timeout.
func (c *collector) wait(t *testing.T, key string, n int) cvv1.WriteBackStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	go func() { time.Sleep(61 * time.Second); c.cond.Broadcast() }()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.got[key]) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no report %d for %s within 60s (have %v)", n, key, c.got[key])
		}
		c.cond.Wait()
	}
	return c.got[key][n-1]
}

func newTestWriter(t *testing.T, c *collector, cfg Config) *Writer {
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = 50 * time.Millisecond
	}
	w := New(cfg, c.report)
	t.Cleanup(w.Close)
	return w
}

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

const kustomization = `# overlay
resources:
- deployment.yaml
images:
- name: registry.example.com/team/web # frontend
  newTag: old
  digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
`

const helmValues = `image:
  repository: registry.example.com/team/web
  tag: old  # set by cvmanager
`

const setterManifest = `apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.example.com/team/web:old # {"$cvmanager": "prod:web"}
`

func request(s *gitServer, url, key, id string, n int, targets ...cvv1.WriteBackTarget) Request {
	return Request{
		Key: key, RolloutID: id, ImageRepo: "registry.example.com/team/web",
		Version: fmt.Sprintf("v%d", n), Digest: digest(n),
		Provenance:  cvv1.Provenance{Revision: "0123abc", Source: "https://git.example.com/team/web", CILink: "https://ci.example.com/run/7"},
		Signer:      "key SHA256:abc",
		Spec:        cvv1.WriteBackSpec{URL: url, Branch: "main", Targets: targets},
		Credentials: Credentials{Username: s.user, Password: s.pass},
	}
}

var (
	kustomizeTarget = cvv1.WriteBackTarget{Path: "overlays/prod/kustomization.yaml", Kind: cvv1.TargetKustomize}
	helmTarget      = cvv1.WriteBackTarget{Path: "charts/web/values.yaml", Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag", Digest: "image.digest"}}
	setterTarget    = cvv1.WriteBackTarget{Path: "deploy/web.yaml", Kind: cvv1.TargetSetter}
)

// TestEachTargetKindOneCommit: one rollout with the three kinds of target
// becomes one commit with the trailer, and every file holds the new image
// with its comments.
func TestEachTargetKindOneCommit(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("app", map[string]string{
		"overlays/prod/kustomization.yaml": kustomization, "charts/web/values.yaml": helmValues, "deploy/web.yaml": setterManifest, "README.md": "hi\n"})
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	w.Submit(request(s, url, "prod/web", "r1", 1, kustomizeTarget, helmTarget, setterTarget))
	st := c.wait(t, "prod/web", 1)
	if st.State != cvv1.WriteBackWritten || st.Commit == "" || st.RolloutID != "r1" || st.Digest != digest(1) {
		t.Fatalf("status = %+v, want Written with a commit", st)
	}
	if head := s.git(s.bare("app"), "rev-parse", "main"); head != st.Commit {
		t.Fatalf("main is at %s, the report says %s", head, st.Commit)
	}
	if n := s.commits("app", "main"); n != 2 {
		t.Fatalf("%d commits on main, want 2 (seed + one write)", n)
	}
	msg := s.git(s.bare("app"), "log", "-1", "--format=%B", "main")
	for _, want := range []string{"Deploy prod/web to v1", "Source revision: 0123abc", "CI: https://ci.example.com/run/7", "Signed by: key SHA256:abc", "Cvmanager-Rollout: r1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if got := s.show("app", "main", "overlays/prod/kustomization.yaml"); !strings.Contains(got, "newTag: v1\n  digest: "+digest(1)) || !strings.Contains(got, "# frontend") {
		t.Errorf("kustomization.yaml:\n%s", got)
	}
	if got, want := s.show("app", "main", "charts/web/values.yaml"), "image:\n  repository: registry.example.com/team/web\n  tag: v1  # set by cvmanager\n  digest: "+digest(1); got != want {
		t.Errorf("values.yaml = %q, want %q", got, want)
	}
	if got := s.show("app", "main", "deploy/web.yaml"); !strings.Contains(got, "image: registry.example.com/team/web:v1@"+digest(1)+" # {\"$cvmanager\": \"prod:web\"}") {
		t.Errorf("deploy/web.yaml:\n%s", got)
	}
	// Files the write did not target are untouched.
	if got := s.show("app", "main", "README.md"); got != "hi" {
		t.Errorf("README.md = %q", got)
	}
}

// TestConcurrentPushIsNotLost: another writer pushes between our fetch and
// our push. Our push is refused (never forced), we re-fetch, re-apply and
// push again: both changes are on the branch.
func TestConcurrentPushIsNotLost(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("race", map[string]string{"charts/web/values.yaml": helmValues})
	s.mu.Lock()
	s.beforeReceive = func() { s.pushOther("race", "other.txt", "theirs\n") }
	s.mu.Unlock()
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	w.Submit(request(s, url, "prod/web", "r1", 1, helmTarget))
	st := c.wait(t, "prod/web", 1)
	if st.State != cvv1.WriteBackWritten {
		t.Fatalf("status = %+v, want Written", st)
	}
	if got := s.show("race", "main", "other.txt"); got != "theirs" {
		t.Fatalf("the other writer's commit was lost: other.txt = %q", got)
	}
	if got := s.show("race", "main", "charts/web/values.yaml"); !strings.Contains(got, digest(1)) {
		t.Fatalf("our edit is missing:\n%s", got)
	}
	if n := s.commits("race", "main"); n != 3 {
		t.Fatalf("%d commits, want 3 (seed, theirs, ours)", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.receives < 2 {
		t.Fatalf("%d pushes reached the server, want a refused one and a retry", s.receives)
	}
}

// TestFiftyCVsOneRepo: 50 CVs of one repository move at once; they share
// at most 3 commits and every digest is in the files at the end.
func TestFiftyCVsOneRepo(t *testing.T) {
	s := newGitServer(t)
	files := map[string]string{}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("apps/cv%02d/values.yaml", i)] = helmValues
	}
	url := s.newRepo("mono", files)
	c := newCollector()
	w := newTestWriter(t, c, Config{BatchWindow: 200 * time.Millisecond})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tg := helmTarget
			tg.Path = fmt.Sprintf("apps/cv%02d/values.yaml", i)
			w.Submit(request(s, url, fmt.Sprintf("prod/cv%02d", i), fmt.Sprintf("r%02d", i), 100+i, tg))
		}(i)
	}
	wg.Wait()
	for i := 0; i < 50; i++ {
		if st := c.wait(t, fmt.Sprintf("prod/cv%02d", i), 1); st.State != cvv1.WriteBackWritten {
			t.Fatalf("cv%02d: %+v", i, st)
		}
	}
	if n := s.commits("mono", "main") - 1; n < 1 || n > 3 {
		t.Fatalf("%d commits for 50 CVs, want 1 to 3", n)
	}
	for i := 0; i < 50; i++ {
		if got := s.show("mono", "main", fmt.Sprintf("apps/cv%02d/values.yaml", i)); !strings.Contains(got, digest(100+i)) {
			t.Errorf("cv%02d's digest is missing:\n%s", i, got)
		}
	}
}

// TestWrongCredentials: the reason names the repository and carries no
// secret; nothing is written.
func TestWrongCredentials(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("locked", map[string]string{"charts/web/values.yaml": helmValues})
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/web", "r1", 1, helmTarget)
	req.Credentials = Credentials{Username: "writer", Password: "wrong-password-123", Token: ""}
	w.Submit(req)
	st := c.wait(t, "prod/web", 1)
	if st.State != cvv1.WriteBackFailed || st.Attempts != 1 {
		t.Fatalf("status = %+v, want Failed", st)
	}
	t.Logf("reason: %s", st.Reason)
	if !strings.Contains(st.Reason, url) || !strings.Contains(st.Reason, "authentication") {
		t.Errorf("reason %q should name %s and say authentication failed", st.Reason, url)
	}
	for _, secret := range []string{"wrong-password-123", s.pass} {
		if strings.Contains(st.Reason, secret) {
			t.Errorf("reason leaks a secret: %q", st.Reason)
		}
	}
	req.Credentials = Credentials{Token: "tok-wrong-456"}
	req.RolloutID = "r2"
	w.Submit(req)
	if st := c.wait(t, "prod/web", 2); st.State != cvv1.WriteBackFailed || strings.Contains(st.Reason, "tok-wrong-456") {
		t.Errorf("token: status = %+v", st)
	}
	if n := s.commits("locked", "main"); n != 1 {
		t.Fatalf("%d commits, want only the seed", n)
	}
}

// TestReplayWritesNothing: the same rollout submitted again (a controller
// restart, a redone apply) finds its trailer and reports the same commit,
// even after other commits landed on top.
func TestReplayWritesNothing(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("replay", map[string]string{"charts/web/values.yaml": helmValues})
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/web", "r1", 1, helmTarget)
	w.Submit(req)
	first := c.wait(t, "prod/web", 1)
	// Someone edits the file by hand afterwards; the replay must not undo it.
	s.pushOther("replay", "charts/web/values.yaml", "image:\n  tag: hand-edited\n")
	w2 := newTestWriter(t, c, Config{}) // a restarted controller: fresh cache
	w2.Submit(req)
	second := c.wait(t, "prod/web", 2)
	if second.State != cvv1.WriteBackWritten || second.Commit != first.Commit {
		t.Fatalf("replay: %+v, want Written at %s", second, first.Commit)
	}
	if n := s.commits("replay", "main"); n != 3 {
		t.Fatalf("%d commits, want 3 (seed, write, hand edit)", n)
	}
	if got := s.show("replay", "main", "charts/web/values.yaml"); !strings.Contains(got, "hand-edited") {
		t.Fatalf("the replay rewrote the file:\n%s", got)
	}
}

// TestRollbackWritesRestoredDigest: a rollback's request writes the
// restored digest, and says so.
func TestRollbackWritesRestoredDigest(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("rollback", map[string]string{"overlays/prod/kustomization.yaml": kustomization})
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	w.Submit(request(s, url, "prod/web", "r1", 1, kustomizeTarget))
	c.wait(t, "prod/web", 1)
	back := request(s, url, "prod/web", "r3-rollback", 1, kustomizeTarget)
	back.RolledBack, back.FromVersion = true, "v2"
	back.Version = "v0"
	back.Digest = digest(0)
	w.Submit(back)
	if st := c.wait(t, "prod/web", 2); st.State != cvv1.WriteBackWritten {
		t.Fatalf("%+v", st)
	}
	if got := s.show("rollback", "main", "overlays/prod/kustomization.yaml"); !strings.Contains(got, "digest: "+digest(0)) {
		t.Fatalf("restored digest missing:\n%s", got)
	}
	if msg := s.git(s.bare("rollback"), "log", "-1", "--format=%B", "main"); !strings.HasPrefix(msg, "Roll back prod/web to v0") {
		t.Fatalf("message: %s", msg)
	}
}

// TestTargetErrorFailsOnlyItsRequest: a CV whose target is missing fails
// with a reason naming the repository and file; the others in the batch
// are written.
func TestTargetErrorFailsOnlyItsRequest(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("partial", map[string]string{"charts/web/values.yaml": helmValues})
	c := newCollector()
	w := newTestWriter(t, c, Config{BatchWindow: 200 * time.Millisecond})
	bad := helmTarget
	bad.Path = "charts/missing/values.yaml"
	w.Submit(request(s, url, "prod/bad", "rb", 1, bad))
	w.Submit(request(s, url, "prod/web", "rw", 2, helmTarget))
	if st := c.wait(t, "prod/bad", 1); st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, url) || !strings.Contains(st.Reason, "charts/missing/values.yaml") {
		t.Errorf("bad: %+v", st)
	}
	if st := c.wait(t, "prod/web", 1); st.State != cvv1.WriteBackWritten {
		t.Errorf("web: %+v", st)
	}
}

// TestMissingBranchOrSymlink: a branch that does not exist and a target
// that is a symlink fail with reasons saying so.
func TestMissingBranchOrSymlink(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("odd", map[string]string{"charts/web/values.yaml": helmValues})
	work := t.TempDir()
	s.git(work, "clone", "-q", s.bare("odd"), ".")
	s.git(work, "update-index", "--add", "--cacheinfo", "120000,"+s.gitStdin(work, "charts/web/values.yaml", "hash-object", "-w", "--stdin")+",link.yaml")
	s.git(work, "commit", "-q", "-m", "a symlink")
	s.git(work, "push", "-q", "origin", "main")
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/a", "r1", 1, helmTarget)
	req.Spec.Branch = "release"
	w.Submit(req)
	if st := c.wait(t, "prod/a", 1); st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, "branch release does not exist") {
		t.Errorf("missing branch: %+v", st)
	}
	link := helmTarget
	link.Path = "link.yaml"
	w.Submit(request(s, url, "prod/b", "r2", 1, link))
	if st := c.wait(t, "prod/b", 1); st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, "not a regular file") {
		t.Errorf("symlink: %+v", st)
	}
}

// TestTwoWritersContend: two writers (two controllers, or two clusters
// sharing a repository) push 25 CVs each at the same moment. Their pushes
// keep colliding; every digest of both ends up on the branch and nothing
// is forced.
func TestTwoWritersContend(t *testing.T) {
	s := newGitServer(t)
	files := map[string]string{}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("apps/cv%02d/values.yaml", i)] = helmValues
	}
	url := s.newRepo("shared", files)
	c := newCollector()
	writers := []*Writer{newTestWriter(t, c, Config{BatchWindow: 20 * time.Millisecond}), newTestWriter(t, c, Config{BatchWindow: 20 * time.Millisecond})}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tg := helmTarget
			tg.Path = fmt.Sprintf("apps/cv%02d/values.yaml", i)
			// Each CV submits a few rollouts in a row, so pushes keep racing.
			for n := 0; n < 3; n++ {
				writers[i%2].Submit(request(s, url, fmt.Sprintf("prod/cv%02d", i), fmt.Sprintf("c%02d-%d", i, n), 100*n+i, tg))
				c.wait(t, fmt.Sprintf("prod/cv%02d", i), n+1)
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < 50; i++ {
		key := fmt.Sprintf("prod/cv%02d", i)
		for n, st := range c.got[key] {
			if st.State != cvv1.WriteBackWritten {
				t.Errorf("%s rollout %d: %+v", key, n, st)
			}
		}
		if got := s.show("shared", "main", fmt.Sprintf("apps/cv%02d/values.yaml", i)); !strings.Contains(got, digest(200+i)) {
			t.Errorf("%s: the last digest is missing:\n%s", key, got)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%d commits, %d pushes reached the server", s.commits("shared", "main")-1, s.receives)
}

// TestHTTPSPrivateCA: a server whose certificate a private CA signs is
// refused until the Secret's CA bundle is given, for git and for the
// forge API.
func TestHTTPSPrivateCA(t *testing.T) {
	s, ca := newTLSGitServer(t)
	url := s.newRepo("team/app", map[string]string{"charts/web/values.yaml": helmValues})
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/web", "r1", 1, helmTarget)
	w.Submit(req)
	st := c.wait(t, "prod/web", 1)
	if st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, url) || !strings.Contains(st.Reason, "certificate") {
		t.Fatalf("without the CA: %+v", st)
	}
	t.Logf("reason: %s", st.Reason)
	req.Credentials.CABundle = ca
	w.Submit(req)
	if st := c.wait(t, "prod/web", 2); st.State != cvv1.WriteBackWritten {
		t.Fatalf("with the CA: %+v", st)
	}

	// PullRequest mode over HTTPS to a forge API signed by the same CA.
	f := &forgeStandIn{t: t, git: s, repo: "team/app", token: s.pass}
	api := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(api.Close)
	pr := request(s, url, "prod/web", "r2", 2, helmTarget)
	pr.Spec.Mode = cvv1.WriteBackPullRequest
	pr.Spec.PullRequest = &cvv1.PullRequestSpec{Provider: "GitHub", APIURL: api.URL + "/github"}
	pr.Credentials = Credentials{Username: s.user, Token: s.pass, CABundle: ca}
	w.Submit(pr)
	if st := c.wait(t, "prod/web", 3); st.State != cvv1.WriteBackWritten || st.PullRequestURL == "" {
		t.Fatalf("PR over HTTPS: %+v", st)
	}
}

// TestNewerRolloutSupersedesQueued: a second rollout of a CV submitted
// while the first still waits in the batch window replaces it; only the
// newer image is written and reported.
//
// That r1 is never reported is shown by a marker: a request of another CV
// to the same repository and branch, submitted after r2's report. One
// goroutine writes a group's batches in turn and reports a batch's
// requests in the order they were queued, so anything of r1's (in r2's
// batch, or left queued behind it) would be reported before the marker.
func TestNewerRolloutSupersedesQueued(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("supersede", map[string]string{"charts/web/values.yaml": helmValues, "charts/api/values.yaml": helmValues})
	c := newCollector()
	w := newTestWriter(t, c, Config{BatchWindow: 300 * time.Millisecond})
	w.Submit(request(s, url, "prod/web", "r1", 1, helmTarget))
	w.Submit(request(s, url, "prod/web", "r2", 2, helmTarget))
	if st := c.wait(t, "prod/web", 1); st.State != cvv1.WriteBackWritten || st.RolloutID != "r2" {
		t.Fatalf("%+v, want r2 written", st)
	}
	if got := s.show("supersede", "main", "charts/web/values.yaml"); !strings.Contains(got, digest(2)) || s.commits("supersede", "main") != 2 {
		t.Fatalf("want one commit with digest 2:\n%s", got)
	}
	api := helmTarget
	api.Path = "charts/api/values.yaml"
	w.Submit(request(s, url, "prod/api", "marker", 3, api))
	if st := c.wait(t, "prod/api", 1); st.State != cvv1.WriteBackWritten {
		t.Fatalf("marker: %+v, want written", st)
	}
	c.mu.Lock()
	n := len(c.got["prod/web"])
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d reports, want 1 (r1 was superseded)", n)
	}
	if got := s.show("supersede", "main", "charts/web/values.yaml"); !strings.Contains(got, digest(2)) || s.commits("supersede", "main") != 3 {
		t.Fatalf("want digest 2 kept and only the marker's commit after r2's:\n%s", got)
	}
}
