package writeback

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// pullRequest writes one request in PullRequest mode: the edit, made on the
// base branch's head, is pushed to cvmanager/<namespace>-<name> (a
// fast-forward of that branch: a merge of its old head and the base when
// both moved), then the one open pull or merge request of that branch is
// opened or updated.
func (w *Writer) pullRequest(ctx context.Context, groupKey string, req Request) {
	repoName := redactURL(req.Spec.URL)
	fail := func(err error) {
		w.fail(req, fmt.Errorf("write-back to %s (pull request from %s): %w", repoName, req.prBranch(), err))
	}
	rc, err := connect(req.Spec.URL, req.Credentials)
	if err != nil {
		fail(err)
		return
	}
	fg, err := newForge(req, w.cfg.HTTPClient)
	if err != nil {
		fail(err)
		return
	}
	cr, err := w.repos.get(groupKey, req.Spec.URL)
	if err != nil {
		fail(err)
		return
	}
	defer cr.mu.Unlock()
	var lastErr error
	for attempt := 1; attempt <= w.cfg.PushAttempts; attempt++ {
		if attempt > 1 && !pause(ctx, attempt) {
			break
		}
		commit, done, err := w.prRound(ctx, cr.repo, rc, req)
		if err == nil && done {
			w.written(req, commit, "") // the base branch already holds the image
			return
		}
		if err == nil {
			prURL, err := fg.ensure(ctx, req)
			if err != nil {
				fail(err)
				return
			}
			w.written(req, commit, prURL)
			return
		}
		lastErr = err
		if permanent(err) {
			break
		}
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	w.repos.drop(groupKey)
	fail(errors.New(describeGitErr(lastErr)))
}

// prRound is one fetch-edit-push round of PullRequest mode. done is true
// when nothing needs a pull request (the base already has the image or
// the rollout's commit).
func (w *Writer) prRound(ctx context.Context, repo *git.Repository, rc remoteConn, req Request) (string, bool, error) {
	base, prb := req.branch(), req.prBranch()
	heads, err := fetchBranch(ctx, repo, rc, base, prb)
	if err != nil {
		return "", false, err
	}
	baseHead, ok := heads[base]
	if !ok {
		return "", false, permanentErr{fmt.Errorf("branch %s does not exist", base)}
	}
	prHead := heads[prb]
	want := map[string]bool{req.trailerLine(): true}
	if found, err := findTrailers(repo, baseHead, w.cfg.HistoryDepth, want); err != nil {
		return "", false, err
	} else if c, ok := found[req.trailerLine()]; ok {
		return c.String(), true, nil // merged already
	}
	if found, err := findTrailers(repo, prHead, w.cfg.HistoryDepth, want); err != nil {
		return "", false, err
	} else if c, ok := found[req.trailerLine()]; ok {
		return c.String(), false, nil // pushed already; make sure the PR is open
	}
	bc, err := repo.CommitObject(baseHead)
	if err != nil {
		return "", false, err
	}
	tree, err := bc.Tree()
	if err != nil {
		return "", false, err
	}
	fs := newFileSet(tree)
	changed, err := fs.apply(req)
	if err != nil {
		return "", false, permanentErr{err}
	}
	if !changed {
		return baseHead.String(), true, nil
	}
	msg, err := batchMessage([]Request{req})
	if err != nil {
		return "", false, permanentErr{err}
	}
	treeHash, err := writeTree(repo, tree, fs.changedFiles())
	if err != nil {
		return "", false, err
	}
	parents, err := prParents(repo, baseHead, prHead)
	if err != nil {
		return "", false, err
	}
	c, err := storeCommit(repo, treeHash, parents, msg, req.Spec.Author, w.cfg.Now())
	if err != nil {
		return "", false, err
	}
	if err := push(ctx, repo, rc, prb, prHead, c); err != nil {
		return "", false, err
	}
	return c.String(), false, nil
}

// prParents makes the new PR commit a fast-forward of the PR branch: on
// the base head when the branch is absent or merged, else on the branch's
// head, merging the base in when the base moved since.
func prParents(repo *git.Repository, baseHead, prHead plumbing.Hash) ([]plumbing.Hash, error) {
	if prHead.IsZero() {
		return []plumbing.Hash{baseHead}, nil
	}
	pc, err := repo.CommitObject(prHead)
	if err != nil {
		return nil, err
	}
	bc, err := repo.CommitObject(baseHead)
	if err != nil {
		return nil, err
	}
	if prHead == baseHead {
		return []plumbing.Hash{baseHead}, nil
	}
	if merged, err := pc.IsAncestor(bc); err != nil {
		return nil, err
	} else if merged {
		return []plumbing.Hash{baseHead}, nil
	}
	if contains, err := bc.IsAncestor(pc); err != nil {
		return nil, err
	} else if contains {
		return []plumbing.Hash{prHead}, nil
	}
	return []plumbing.Hash{prHead, baseHead}, nil
}

// permanentErr marks an error that another round will not fix (a target
// that does not parse, a bad template).
type permanentErr struct{ error }

func (e permanentErr) Unwrap() error { return e.error }

// forge opens or updates the pull or merge request of a CV's branch.
type forge interface {
	ensure(ctx context.Context, req Request) (string, error)
}

// A small typed client rather than the forges' SDKs: the writer makes three
// REST calls per forge (list open, create, update); the SDKs would add
// tens of thousands of lines and their own transports to a controller that
// must keep its dependency set (and its image) small.
type restClient struct {
	http    *http.Client
	api     string // base URL, no trailing slash
	project string // owner/repo or group/subgroup/project
	header  http.Header
	kind    string
}

func newForge(req Request, hc *http.Client) (forge, error) {
	pr := req.Spec.PullRequest
	if pr == nil {
		return nil, errors.New("writeBack.pullRequest is missing")
	}
	ep, err := transport.NewEndpoint(req.Spec.URL)
	if err != nil {
		return nil, errors.New("the URL does not parse as a git URL")
	}
	project := strings.TrimSuffix(strings.Trim(ep.Path, "/"), ".git")
	if !strings.Contains(project, "/") {
		return nil, fmt.Errorf("cannot tell owner and repository from the path %q", project)
	}
	token := req.Credentials.Token
	if token == "" {
		token = req.Credentials.Password
	}
	if token == "" {
		return nil, errors.New("PullRequest mode needs an API token in the Secret (tokenKey)")
	}
	scheme := "https"
	if ep.Protocol == "http" {
		scheme = "http"
	}
	hc, err = withCA(hc, req.Credentials.CABundle)
	if err != nil {
		return nil, err
	}
	c := &restClient{http: hc, project: project, header: http.Header{}, kind: pr.Provider}
	host := ep.Host
	if ep.Port != 0 && ep.Protocol != "ssh" {
		host = fmt.Sprintf("%s:%d", ep.Host, ep.Port)
	}
	c.header.Set("Content-Type", "application/json")
	switch pr.Provider {
	case "GitHub":
		c.api = scheme + "://api." + host
		c.header.Set("Authorization", "Bearer "+token)
		c.header.Set("Accept", "application/vnd.github+json")
		c.header.Set("X-GitHub-Api-Version", "2022-11-28")
	case "GitLab":
		c.api = scheme + "://" + host + "/api/v4"
		c.header.Set("PRIVATE-TOKEN", token)
	default:
		return nil, fmt.Errorf("unknown pull request provider %q", pr.Provider)
	}
	if pr.APIURL != "" {
		c.api = strings.TrimSuffix(pr.APIURL, "/")
	}
	if c.kind == "GitHub" {
		return githubForge{c}, nil
	}
	return gitlabForge{c}, nil
}

// withCA returns hc trusting the PEM certificates in ca besides the system
// roots (hc itself when ca is empty).
func withCA(hc *http.Client, ca []byte) (*http.Client, error) {
	if len(ca) == 0 {
		return hc, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("the CA certificates in the Secret (caKey) do not parse as PEM")
	}
	base, _ := hc.Transport.(*http.Transport)
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	out := *hc
	out.Transport = tr
	return &out, nil
}

// do sends one JSON request and decodes the answer into out.
func (c *restClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, body)
	if err != nil {
		return fmt.Errorf("%s API: bad URL", c.kind)
	}
	req.Header = c.header.Clone()
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s API %s %s: %v", c.kind, method, redactURL(c.api)+path, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return fmt.Errorf("%s API %s %s: %s: %s", c.kind, method, redactURL(c.api)+path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s API %s %s: answer does not parse: %v", c.kind, method, redactURL(c.api)+path, err)
		}
	}
	return nil
}

// prText is the title (the message's subject) and body of a PR.
func prText(req Request) (string, string, error) {
	msg, err := req.Message()
	if err != nil {
		return "", "", err
	}
	title, body, _ := strings.Cut(msg, "\n")
	body = strings.TrimSpace(body) + "\n\n" + req.trailerLine() + "\n\nOpened by cvmanager after the rollout passed; updated in place by later rollouts of " + req.Key + "."
	return title, strings.TrimSpace(body), nil
}

type githubForge struct{ c *restClient }

type githubPR struct {
	Number  int    `json:"number"`
	HTMLURL string `json:"html_url"`
}

func (g githubForge) ensure(ctx context.Context, req Request) (string, error) {
	title, body, err := prText(req)
	if err != nil {
		return "", err
	}
	owner, _, _ := strings.Cut(g.c.project, "/")
	base := "/repos/" + g.c.project + "/pulls"
	var open []githubPR
	q := url.Values{"state": {"open"}, "head": {owner + ":" + req.prBranch()}, "base": {req.branch()}}
	if err := g.c.do(ctx, http.MethodGet, base+"?"+q.Encode(), nil, &open); err != nil {
		return "", err
	}
	var pr githubPR
	if len(open) > 0 {
		err = g.c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/%d", base, open[0].Number), map[string]string{"title": title, "body": body}, &pr)
	} else {
		err = g.c.do(ctx, http.MethodPost, base, map[string]string{"title": title, "body": body, "head": req.prBranch(), "base": req.branch()}, &pr)
	}
	return pr.HTMLURL, err
}

type gitlabForge struct{ c *restClient }

type gitlabMR struct {
	IID    int    `json:"iid"`
	WebURL string `json:"web_url"`
}

func (g gitlabForge) ensure(ctx context.Context, req Request) (string, error) {
	title, body, err := prText(req)
	if err != nil {
		return "", err
	}
	base := "/projects/" + url.PathEscape(g.c.project) + "/merge_requests"
	var open []gitlabMR
	q := url.Values{"state": {"opened"}, "source_branch": {req.prBranch()}, "target_branch": {req.branch()}}
	if err := g.c.do(ctx, http.MethodGet, base+"?"+q.Encode(), nil, &open); err != nil {
		return "", err
	}
	var mr gitlabMR
	if len(open) > 0 {
		err = g.c.do(ctx, http.MethodPut, fmt.Sprintf("%s/%d", base, open[0].IID), map[string]string{"title": title, "description": body}, &mr)
	} else {
		err = g.c.do(ctx, http.MethodPost, base, map[string]any{"title": title, "description": body,
			"source_branch": req.prBranch(), "target_branch": req.branch(), "remove_source_branch": true}, &mr)
	}
	return mr.WebURL, err
}
