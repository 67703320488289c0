package writeback

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// commitBatch writes a batch of Commit-mode requests for one repository,
// branch and credential set as one commit, re-fetching and re-applying on
// a rejected push.
func (w *Writer) commitBatch(ctx context.Context, groupKey string, batch []Request) {
	first := batch[0]
	repoName := redactURL(first.Spec.URL)
	branch := first.branch()
	failAll := func(reqs []Request, err error) {
		for _, r := range reqs {
			w.fail(r, err)
		}
	}
	rc, err := connect(first.Spec.URL, first.Credentials)
	if err != nil {
		failAll(batch, fmt.Errorf("write-back to %s: %w", repoName, err))
		return
	}
	cr, err := w.repos.get(groupKey, first.Spec.URL)
	if err != nil {
		failAll(batch, fmt.Errorf("write-back to %s: %w", repoName, err))
		return
	}
	defer cr.mu.Unlock()

	todo := batch
	var lastErr error
	for attempt := 1; attempt <= w.cfg.PushAttempts && len(todo) > 0; attempt++ {
		if attempt > 1 && !pause(ctx, attempt) {
			break
		}
		var retry bool
		todo, retry, lastErr = w.commitRound(ctx, cr.repo, rc, branch, todo)
		if lastErr != nil && !retry {
			w.repos.drop(groupKey)
			failAll(todo, fmt.Errorf("write-back to %s (branch %s): %s", repoName, branch, describeGitErr(lastErr)))
			return
		}
	}
	if len(todo) > 0 && ctx.Err() != nil {
		failAll(todo, fmt.Errorf("write-back to %s (branch %s): %v", repoName, branch, ctx.Err()))
		return
	}
	if len(todo) > 0 {
		w.repos.drop(groupKey)
		var refused pushRefused
		if errors.As(lastErr, &refused) {
			failAll(todo, fmt.Errorf("write-back to %s (branch %s): push refused %d times, the branch keeps moving: %v",
				repoName, branch, w.cfg.PushAttempts, refused.error))
			return
		}
		failAll(todo, fmt.Errorf("write-back to %s (branch %s): failed %d times: %s", repoName, branch, w.cfg.PushAttempts, describeGitErr(lastErr)))
	}
}

// pause waits a little before another round, longer each round and
// jittered, so two writers racing for one branch stop colliding; false
// when ctx ended.
func pause(ctx context.Context, attempt int) bool {
	d := time.Duration(attempt-1) * time.Duration(10+rand.IntN(40)) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// commitRound is one fetch-edit-push round. It reports the requests it
// settled (written, already present, or failed on their own) and returns
// those left to retry; retry is false when the error is not worth another
// round.
func (w *Writer) commitRound(ctx context.Context, repo *git.Repository, rc remoteConn, branch string, reqs []Request) ([]Request, bool, error) {
	heads, err := fetchBranch(ctx, repo, rc, branch)
	if err != nil {
		return reqs, !permanent(err), err
	}
	head, ok := heads[branch]
	if !ok {
		return reqs, false, fmt.Errorf("branch %s does not exist", branch)
	}
	want := map[string]bool{}
	for _, r := range reqs {
		want[r.trailerLine()] = true
	}
	found, err := findTrailers(repo, head, w.cfg.HistoryDepth, want)
	if err != nil {
		return reqs, true, err
	}
	commit, err := repo.CommitObject(head)
	if err != nil {
		return reqs, true, err
	}
	tree, err := commit.Tree()
	if err != nil {
		return reqs, true, err
	}
	fs := newFileSet(tree)
	var toWrite []Request
	for _, r := range reqs {
		if c, ok := found[r.trailerLine()]; ok {
			w.written(r, c.String(), "") // a replay: the rollout is already on the branch
			continue
		}
		changed, err := fs.apply(r)
		switch {
		case err != nil:
			w.fail(r, fmt.Errorf("write-back to %s (branch %s): %w", redactURL(r.Spec.URL), branch, err))
		case !changed:
			w.written(r, head.String(), "") // git already holds this image
		default:
			toWrite = append(toWrite, r)
		}
	}
	if len(toWrite) == 0 {
		return nil, false, nil
	}
	msg, err := batchMessage(toWrite)
	if err != nil {
		for _, r := range toWrite {
			w.fail(r, fmt.Errorf("write-back to %s: %w", redactURL(r.Spec.URL), err))
		}
		return nil, false, nil
	}
	treeHash, err := writeTree(repo, tree, fs.changedFiles())
	if err != nil {
		return toWrite, true, err
	}
	newCommit, err := storeCommit(repo, treeHash, []plumbing.Hash{head}, msg, toWrite[0].Spec.Author, w.cfg.Now())
	if err != nil {
		return toWrite, true, err
	}
	if err := push(ctx, repo, rc, branch, head, newCommit); err != nil {
		if permanent(err) {
			return toWrite, false, err
		}
		return toWrite, true, pushRefused{err}
	}
	for _, r := range toWrite {
		w.written(r, newCommit.String(), "")
	}
	return nil, false, nil
}

// batchMessage is one request's rendered message, or for several a summary
// subject with each request's subject listed; the trailers of all come last.
func batchMessage(reqs []Request) (string, error) {
	var trailers []string
	var body string
	if len(reqs) == 1 {
		msg, err := reqs[0].Message()
		if err != nil {
			return "", err
		}
		body = msg
	} else {
		lines := []string{fmt.Sprintf("cvmanager: write back %d rollouts", len(reqs)), ""}
		for _, r := range reqs {
			msg, err := r.Message()
			if err != nil {
				return "", fmt.Errorf("%s: %w", r.Key, err)
			}
			subject, _, _ := strings.Cut(msg, "\n")
			lines = append(lines, "- "+subject+" ("+r.ImageRepo+"@"+r.Digest+")")
		}
		body = strings.Join(lines, "\n")
	}
	for _, r := range reqs {
		trailers = append(trailers, r.trailerLine())
	}
	if body == "" {
		return "", errors.New("empty commit message")
	}
	return body + "\n\n" + strings.Join(trailers, "\n") + "\n", nil
}
