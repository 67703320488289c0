package writeback

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// forgeStandIn speaks the GitHub and GitLab REST calls the writer uses
// (list open, create, update a pull/merge request) over an in-memory list;
// the branches themselves live on the real git server. It checks the
// token header of each call and that the head branch exists in git.
type forgeStandIn struct {
	t     *testing.T
	git   *gitServer
	repo  string // bare repository name on git
	token string

	mu    sync.Mutex
	prs   []standInPR
	calls []string
}

type standInPR struct {
	Number       int
	Head, Base   string
	Title, Body  string
	Open         bool
	RemoveSource bool
}

func newForgeStandIn(t *testing.T, git *gitServer, repo, token string) (*forgeStandIn, *httptest.Server) {
	f := &forgeStandIn{t: t, git: git, repo: repo, token: token}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *forgeStandIn) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.EscapedPath())
	var in map[string]any
	if r.Body != nil {
		_ = json.NewDecoder(r.Body).Decode(&in)
	}
	str := func(k string) string { s, _ := in[k].(string); return s }
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/github/repos/team/app/pulls"):
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		f.github(w, r, strings.TrimPrefix(p, "/github/repos/team/app/pulls"), str)
	case strings.HasPrefix(p, "/gitlab/api/v4/projects/team%2Fapp/merge_requests"):
		if r.Header.Get("PRIVATE-TOKEN") != f.token {
			http.Error(w, `{"message":"401 Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		f.gitlab(w, r, strings.TrimPrefix(p, "/gitlab/api/v4/projects/team%2Fapp/merge_requests"), str, in)
	default:
		http.NotFound(w, r)
	}
}

func (f *forgeStandIn) github(w http.ResponseWriter, r *http.Request, rest string, str func(string) string) {
	view := func(pr standInPR) map[string]any {
		return map[string]any{"number": pr.Number, "html_url": fmt.Sprintf("http://forge.invalid/team/app/pull/%d", pr.Number)}
	}
	switch {
	case r.Method == http.MethodGet && rest == "":
		q := r.URL.Query()
		out := []map[string]any{}
		for _, pr := range f.prs {
			if pr.Open && "team:"+pr.Head == q.Get("head") && pr.Base == q.Get("base") && q.Get("state") == "open" {
				out = append(out, view(pr))
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && rest == "":
		f.git.git(f.git.bare(f.repo), "rev-parse", "--verify", "refs/heads/"+str("head")) // GitHub refuses a head that does not exist
		pr := standInPR{Number: len(f.prs) + 1, Head: str("head"), Base: str("base"), Title: str("title"), Body: str("body"), Open: true}
		f.prs = append(f.prs, pr)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(view(pr))
	case r.Method == http.MethodPatch:
		n, _ := strconv.Atoi(strings.TrimPrefix(rest, "/"))
		if n < 1 || n > len(f.prs) {
			http.NotFound(w, r)
			return
		}
		f.prs[n-1].Title, f.prs[n-1].Body = str("title"), str("body")
		_ = json.NewEncoder(w).Encode(view(f.prs[n-1]))
	default:
		http.Error(w, "unexpected call", http.StatusBadRequest)
	}
}

func (f *forgeStandIn) gitlab(w http.ResponseWriter, r *http.Request, rest string, str func(string) string, in map[string]any) {
	view := func(pr standInPR) map[string]any {
		return map[string]any{"iid": pr.Number, "web_url": fmt.Sprintf("http://forge.invalid/team/app/-/merge_requests/%d", pr.Number)}
	}
	switch {
	case r.Method == http.MethodGet && rest == "":
		q := r.URL.Query()
		out := []map[string]any{}
		for _, pr := range f.prs {
			if pr.Open && pr.Head == q.Get("source_branch") && pr.Base == q.Get("target_branch") && q.Get("state") == "opened" {
				out = append(out, view(pr))
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && rest == "":
		f.git.git(f.git.bare(f.repo), "rev-parse", "--verify", "refs/heads/"+str("source_branch"))
		rm, _ := in["remove_source_branch"].(bool)
		pr := standInPR{Number: len(f.prs) + 1, Head: str("source_branch"), Base: str("target_branch"), Title: str("title"), Body: str("description"), Open: true, RemoveSource: rm}
		f.prs = append(f.prs, pr)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(view(pr))
	case r.Method == http.MethodPut:
		n, _ := strconv.Atoi(strings.TrimPrefix(rest, "/"))
		if n < 1 || n > len(f.prs) {
			http.NotFound(w, r)
			return
		}
		f.prs[n-1].Title, f.prs[n-1].Body = str("title"), str("description")
		_ = json.NewEncoder(w).Encode(view(f.prs[n-1]))
	default:
		http.Error(w, "unexpected call", http.StatusBadRequest)
	}
}

// TestPullRequestMode, for GitHub and GitLab: the first rollout pushes
// cvmanager/prod-web and opens one PR; the base branch is untouched; a
// second rollout fast-forwards the branch (over a base that moved
// meanwhile) and updates the same PR; a replay changes nothing.
func TestPullRequestMode(t *testing.T) {
	for _, provider := range []string{"GitHub", "GitLab"} {
		t.Run(provider, func(t *testing.T) {
			s := newGitServer(t)
			url := s.newRepo("team/app", map[string]string{"charts/web/values.yaml": helmValues})
			f, api := newForgeStandIn(t, s, "team/app", s.pass)
			apiURL := api.URL + "/github"
			if provider == "GitLab" {
				apiURL = api.URL + "/gitlab/api/v4"
			}
			c := newCollector()
			w := newTestWriter(t, c, Config{})
			req := request(s, url, "prod/web", "r1", 1, helmTarget)
			req.Spec.Mode = cvv1.WriteBackPullRequest
			req.Spec.PullRequest = &cvv1.PullRequestSpec{Provider: provider, APIURL: apiURL}
			req.Credentials = Credentials{Username: s.user, Token: s.pass}
			w.Submit(req)
			st := c.wait(t, "prod/web", 1)
			if st.State != cvv1.WriteBackWritten || st.PullRequestURL == "" || st.Commit == "" {
				t.Fatalf("status = %+v, want Written with a PR URL", st)
			}
			if n := s.commits("team/app", "main"); n != 1 {
				t.Fatalf("PullRequest mode committed to main (%d commits)", n)
			}
			if got := s.show("team/app", "cvmanager/prod-web", "charts/web/values.yaml"); !strings.Contains(got, digest(1)) {
				t.Fatalf("PR branch lacks the digest:\n%s", got)
			}

			// The base moves, then a second rollout updates the same PR.
			s.pushOther("team/app", "other.txt", "theirs\n")
			oldHead := s.git(s.bare("team/app"), "rev-parse", "cvmanager/prod-web")
			req2 := req
			req2.RolloutID, req2.Version, req2.Digest = "r2", "v2", digest(2)
			w.Submit(req2)
			st2 := c.wait(t, "prod/web", 2)
			if st2.State != cvv1.WriteBackWritten || st2.PullRequestURL != st.PullRequestURL {
				t.Fatalf("second rollout: %+v, want the same PR %s", st2, st.PullRequestURL)
			}
			s.git(s.bare("team/app"), "merge-base", "--is-ancestor", oldHead, "cvmanager/prod-web") // fast-forward, not forced
			if got := s.show("team/app", "cvmanager/prod-web", "charts/web/values.yaml"); !strings.Contains(got, digest(2)) {
				t.Fatalf("PR branch lacks the second digest:\n%s", got)
			}
			if got := s.show("team/app", "cvmanager/prod-web", "other.txt"); got != "theirs" {
				t.Fatalf("the PR branch would revert the base's change: other.txt = %q", got)
			}
			// Its diff against main is our file only.
			if diff := s.git(s.bare("team/app"), "diff", "--name-only", "main...cvmanager/prod-web"); diff != "charts/web/values.yaml" {
				t.Fatalf("PR diff touches %q", diff)
			}

			w.Submit(req2) // replay
			if st3 := c.wait(t, "prod/web", 3); st3.Commit != st2.Commit || st3.PullRequestURL != st.PullRequestURL {
				t.Fatalf("replay: %+v", st3)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.prs) != 1 || !strings.Contains(f.prs[0].Title, "v2") || !strings.Contains(f.prs[0].Body, "Cvmanager-Rollout: r2") {
				t.Fatalf("PRs = %+v, want one, updated to v2", f.prs)
			}
			if provider == "GitLab" && !f.prs[0].RemoveSource {
				t.Errorf("merge request should remove its source branch when merged")
			}
			t.Logf("API calls: %v", f.calls)
		})
	}
}

// TestPullRequestBadToken: a refused API token fails with the API's
// answer, naming the repository, without the token.
func TestPullRequestBadToken(t *testing.T) {
	s := newGitServer(t)
	url := s.newRepo("team/app", map[string]string{"charts/web/values.yaml": helmValues})
	_, api := newForgeStandIn(t, s, "team/app", "the-right-token")
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/web", "r1", 1, helmTarget)
	req.Spec.Mode = cvv1.WriteBackPullRequest
	req.Spec.PullRequest = &cvv1.PullRequestSpec{Provider: "GitHub", APIURL: api.URL + "/github"}
	req.Credentials = Credentials{Username: s.user, Token: s.pass}
	w.Submit(req)
	st := c.wait(t, "prod/web", 1)
	if st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, url) || !strings.Contains(st.Reason, "401") || strings.Contains(st.Reason, s.pass) {
		t.Fatalf("status = %+v", st)
	}
	t.Logf("reason: %s", st.Reason)
}
