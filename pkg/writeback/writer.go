// Package writeback records verified rollouts in git: after a rollout
// finished Success (or a rollback restored a digest), the controller hands
// a Request to a Writer, which edits the request's targets (a Kustomize
// images entry, YAML paths such as Helm values' image.tag and image.digest,
// or values marked with setter comments) and commits them to the branch,
// or pushes them to cvmanager/<namespace>-<name> and opens or updates one
// pull or merge request per CV (GitHub and GitLab REST).
//
// The contract with the controller:
//
//	w := writeback.New(writeback.Config{}, func(key string, st cvv1.WriteBackStatus) {
//		// from the writer's goroutines: remember st for key and enqueue key;
//		// the next sync copies it into status.writeBack
//	})
//	defer w.Close()
//
//	// plan (pure): after a rollout finished Success or a rollback restored a digest
//	if due, wait := writeback.Due(cv, now, 0); due { /* action */ } else if wait > 0 { /* AddAfter(key, wait) */ }
//	// apply: resolve spec.writeBack.secretRef, then
//	creds, err := writeback.CredentialsFromSecret(cv.Spec.WriteBack.SecretRef, secret.Data)
//	req := writeback.NewRequest(cv, rolloutID, creds) // rolloutID "" on a resubmission
//	w.Submit(req)                                     // never blocks
//	status.WriteBack = ptr(writeback.Pending(req, now, req.Attempts))
//
// The report callback is called exactly once per Submit that is not
// superseded (a later Submit for the same key before the first was written
// replaces it), with state Written or Failed. It must not block for long.
// The writer does not retry a Failed write on its own: the controller
// resubmits after Backoff(st.Attempts) with Request.Attempts set to
// st.Attempts, re-reading the Secret; that is safe because writes are
// idempotent. A failing write never blocks or undoes the rollout.
//
// Guarantees:
//   - Only the targeted values change; the file is never re-marshalled
//     (gopkg.in/yaml.v3 nodes locate the values, their bytes are replaced).
//   - Each commit carries the trailer "Cvmanager-Rollout: <id>" per
//     rollout; a request whose trailer is already on the branch writes
//     nothing and reports that commit.
//   - Requests for one repository, branch and credential set arriving
//     within Config.BatchWindow become one commit.
//   - A push is never forced. A rejected push re-fetches, re-applies the
//     edits on the new head and tries again (Config.PushAttempts times), so
//     a concurrent writer's commit is never lost.
//   - A failure's reason names the repository and never carries a
//     credential.
//
// go-git (pure Go) speaks to the remote over HTTPS or SSH, with an
// in-memory clone per repository kept between writes so a write fetches
// only what is new. No git binary is needed.
package writeback

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// ReportFunc receives the outcome of a request, under the request's Key.
type ReportFunc func(key string, st cvv1.WriteBackStatus)

// Config tunes a Writer; the zero value is usable.
type Config struct {
	// BatchWindow is how long the first request for a repository waits for
	// others to share its commit (default 200ms).
	BatchWindow time.Duration
	// PushAttempts bounds fetch-edit-push rounds when the branch keeps
	// moving (default 5).
	PushAttempts int
	// HistoryDepth is how many commits of the branch are searched for a
	// request's trailer (default 500).
	HistoryDepth int
	// Timeout bounds one round of fetch, edit and push (default 2m).
	Timeout time.Duration
	// HTTPClient is used for the forge APIs (default: a client with a 30s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock for status times (default time.Now).
	Now func() time.Time
	// MaxCachedRepos bounds the in-memory clones kept (default 32).
	MaxCachedRepos int
	// Observe, when set, is called with each report's state and the time
	// since its Submit, for metrics (a counter by state, a latency
	// histogram); it runs on the writer's goroutines.
	Observe func(state string, sinceSubmit time.Duration)
}

func (c *Config) defaults() {
	if c.BatchWindow <= 0 {
		c.BatchWindow = 200 * time.Millisecond
	}
	if c.PushAttempts <= 0 {
		c.PushAttempts = 5
	}
	if c.HistoryDepth <= 0 {
		c.HistoryDepth = 500
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxCachedRepos <= 0 {
		c.MaxCachedRepos = 32
	}
}

// Writer writes requests back to git in the background. It is safe for
// concurrent use.
type Writer struct {
	cfg    Config
	report ReportFunc
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	groups map[string]*group
	repos  *repoCache

	submitted sync.Map // request key and rollout ID → Submit time, for Config.Observe
}

// group is the queue of one repository, branch and credential set (and,
// in PullRequest mode, one CV): its requests share fetches and commits.
type group struct {
	key     string
	pending []Request
	running bool
}

// New returns a Writer that reports outcomes to report.
func New(cfg Config, report ReportFunc) *Writer {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Writer{cfg: cfg, report: report, ctx: ctx, cancel: cancel,
		groups: map[string]*group{}, repos: newRepoCache(cfg.MaxCachedRepos)}
}

// Pending is the status the controller records when it submits req.
func Pending(req Request, now time.Time, attempts int32) cvv1.WriteBackStatus {
	t := metav1.NewTime(now)
	return cvv1.WriteBackStatus{State: cvv1.WriteBackPending, RolloutID: req.RolloutID, Version: req.Version,
		Digest: req.Digest, Attempts: attempts, Time: &t}
}

// Backoff is how long the controller waits before resubmitting a write
// that failed attempts times: 10s doubling up to 10 minutes.
func Backoff(attempts int32) time.Duration {
	d := 10 * time.Second
	for i := int32(1); i < attempts && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Submit queues req and returns at once. An invalid request is reported
// Failed from another goroutine, like any other outcome. After Close,
// Submit drops req.
func (w *Writer) Submit(req Request) {
	if w.ctx.Err() != nil {
		return
	}
	if w.cfg.Observe != nil {
		w.submitted.Store(req.Key+"\x00"+req.RolloutID, w.cfg.Now())
	}
	if err := req.validate(); err != nil {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.fail(req, fmt.Errorf("write-back to %s: %w", redactURL(req.Spec.URL), err))
		}()
		return
	}
	key := req.Spec.URL + "\x00" + req.branch() + "\x00" + req.Credentials.fingerprint()
	if req.Spec.Mode == cvv1.WriteBackPullRequest {
		key += "\x00pr\x00" + req.Key
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.groups[key]
	if g == nil {
		g = &group{key: key}
		w.groups[key] = g
	}
	replaced := false
	for i := range g.pending {
		if g.pending[i].Key == req.Key {
			if old := g.pending[i]; old.RolloutID != req.RolloutID {
				w.submitted.Delete(old.Key + "\x00" + old.RolloutID) // never reported
			}
			g.pending[i] = req // the newer rollout supersedes the queued one
			replaced = true
		}
	}
	if !replaced {
		g.pending = append(g.pending, req)
	}
	if !g.running {
		g.running = true
		w.wg.Add(1)
		go w.run(g)
	}
}

// Close stops taking work, cancels writes in flight and waits for the
// writer's goroutines. Requests not yet written are dropped unreported;
// the controller resubmits them after a restart (status stays Pending).
func (w *Writer) Close() {
	w.cancel()
	w.wg.Wait()
}

// run drains a group: it waits a batch window, takes everything queued,
// writes it, and goes again while more arrived.
func (w *Writer) run(g *group) {
	defer w.wg.Done()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-time.After(w.cfg.BatchWindow):
		}
		w.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.running = false
			delete(w.groups, g.key)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
		if batch[0].Spec.Mode == cvv1.WriteBackPullRequest {
			w.pullRequest(ctx, g.key, batch[len(batch)-1])
		} else {
			w.commitBatch(ctx, g.key, batch)
		}
		cancel()
	}
}

func (w *Writer) observe(state string, req Request, now time.Time) {
	if w.cfg.Observe == nil {
		return
	}
	if at, ok := w.submitted.LoadAndDelete(req.Key + "\x00" + req.RolloutID); ok {
		w.cfg.Observe(state, now.Sub(at.(time.Time)))
	}
}

func (w *Writer) written(req Request, commit, prURL string) {
	t := metav1.NewTime(w.cfg.Now())
	w.observe(cvv1.WriteBackWritten, req, t.Time)
	w.report(req.Key, cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, RolloutID: req.RolloutID, Version: req.Version,
		Digest: req.Digest, Commit: commit, PullRequestURL: prURL, Time: &t})
}

func (w *Writer) fail(req Request, err error) {
	t := metav1.NewTime(w.cfg.Now())
	w.observe(cvv1.WriteBackFailed, req, t.Time)
	w.report(req.Key, cvv1.WriteBackStatus{State: cvv1.WriteBackFailed, RolloutID: req.RolloutID, Version: req.Version,
		Digest: req.Digest, Reason: req.Credentials.scrub(err.Error()), Attempts: req.Attempts + 1, Time: &t})
}
