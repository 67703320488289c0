package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/gitserver"
)

// The write-back figure (issue 33): rollout finished → commit visible in
// the remote. -writeback-cvs CVs, each with a Kustomize target of its own
// in one repository served by git-http-backend (test/gitserver), move at
// once, round after round, through the real `cvmanager run` (default
// write-back settings: 200 ms batch window). A rollout's finish is the
// time of its Success history record, which the controller takes before
// the status write that submits the write; the commit is visible when the
// served repository's main, read every -writeback-poll, holds a commit
// whose file carries the rollout's digest. Results go to
// <out>/<date>-writeback-finish.json and .md; `go run ./test/bench
// -writeback-only` runs this figure alone.
var (
	writeBackOnly   = flag.Bool("writeback-only", false, "run only the write-back figure (no scales, no fleet) and write <date>-writeback-finish.json/.md")
	writeBackCVs    = flag.Int("writeback-cvs", 10, "CVs writing back to one repository in the write-back figure, all moved at once each round")
	writeBackRounds = flag.Int("writeback-rounds", 20, "rounds of the write-back figure: samples = rounds × CVs")
	writeBackPoll   = flag.Duration("writeback-poll", 20*time.Millisecond, "how often the write-back figure reads the served repository's main")
)

// writeBackTarget is issue 33's target for finished → visible, p99.
const writeBackTarget = 2 * time.Second

// writeBackWait bounds one round: a digest not in git by then is a miss.
const writeBackWait = time.Minute

// writeBackResult is the figure as written to <date>-writeback-finish.json.
type writeBackResult struct {
	Started     time.Time     `json:"started"`
	Machine     machine       `json:"machine"`
	Load        string        `json:"load"`
	Flags       []string      `json:"controllerFlags"`
	CVs         int           `json:"cvs"`
	Rounds      int           `json:"rounds"`
	PollMs      float64       `json:"pollMs"`
	TargetP99Ms float64       `json:"targetP99Ms"`
	Visible     latencyResult `json:"finishedToVisible"`
	AllMs       []float64     `json:"allMs"`
	// Commits made on main by the measured rounds (CVs of one round
	// share a commit when they finish within the batch window).
	Commits int `json:"commits"`
	// RecordsNamingCommit counts the measured rollouts whose history
	// record names the very commit that made their digest visible.
	RecordsNamingCommit int      `json:"recordsNamingCommit"`
	Misses              []string `json:"misses,omitempty"`
	Seconds             float64  `json:"seconds"`
	Errors              []string `json:"errors,omitempty"`
}

// wbSample is one rollout measured: its CV, digest, finish and when (in
// which commit) git showed it.
type wbSample struct {
	m        member
	digest   string
	finished time.Time
	visible  time.Time
	commit   string
}

// measureWriteBack runs the figure and writes its results.
func measureWriteBack(ctx context.Context, e *env, cfg *config) (*writeBackResult, error) {
	res := &writeBackResult{Started: time.Now().UTC(), Machine: readMachine(), CVs: *writeBackCVs, Rounds: *writeBackRounds,
		PollMs: ms(*writeBackPoll), TargetP99Ms: ms(writeBackTarget)}
	defer func() {
		res.Load = loadavg()
		if err := res.write(cfg.out); err != nil {
			say("write-back: writing the results: %v", err)
		}
	}()
	err := runWriteBack(ctx, e, cfg, res)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res, err
}

// runWriteBack sets the figure up, warms it (every CV's running version
// written once) and measures the rounds.
func runWriteBack(ctx context.Context, e *env, cfg *config, res *writeBackResult) error {
	pop := &population{env: e, cfg: cfg, prefix: "writeback"}
	srv, err := startWriteBackRepo(e, pop, *writeBackCVs)
	if err != nil {
		return err
	}
	defer srv.Close()
	pop.edit = func(m member, cv *cvv1.ContainerVersion) {
		cv.Spec.History.Enabled = true
		cv.Spec.WriteBack = &cvv1.WriteBackSpec{URL: srv.URL, Branch: "main",
			SecretRef: &cvv1.GitSecretRef{Name: "git", UsernameKey: "username", PasswordKey: "password"},
			Targets:   []cvv1.WriteBackTarget{{Path: wbPath(m.cv), Kind: cvv1.TargetKustomize}}}
	}
	if err := pop.growTo(ctx, *writeBackCVs, func(i int) int { return i }); err != nil {
		return err
	}
	if err := createGitSecrets(ctx, e, pop, srv); err != nil {
		return err
	}
	res.Flags = []string{"--cv-selector", "bench in (writeback)"}
	proc, err := startController(e, "cvmanager-writeback", res.Flags...)
	if err != nil {
		return err
	}
	defer proc.stop(cfg.out)
	if _, err := proc.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if !waitFor(ctx, 2*time.Minute, func() bool { return allWritten(ctx, e, pop) }) {
		return fmt.Errorf("warm-up: the running versions were not all written back within 2 minutes")
	}
	watch := newHeadWatch(srv.Bare)
	go watch.run(ctx, *writeBackPoll)
	defer watch.stop()
	from, start := watch.head(), time.Now()
	var samples []*wbSample
	for round := 0; round < *writeBackRounds && ctx.Err() == nil; round++ {
		samples = append(samples, writeBackRound(ctx, e, pop, watch, res)...)
		say("write-back: round %d of %d done", round+1, *writeBackRounds)
	}
	res.Seconds = time.Since(start).Seconds()
	summarizeWriteBack(ctx, e, srv.Bare, from, samples, res)
	say("write-back: finished → visible p50 %.0f ms p99 %.0f ms max %.0f ms (n=%d of %d), %d commits, %d misses",
		res.Visible.P50Ms, res.Visible.P99Ms, res.Visible.MaxMs, res.Visible.Samples, res.Visible.Expected, res.Commits, len(res.Misses))
	return ctx.Err()
}

// wbPath is the kustomization the CV named cv writes to.
func wbPath(cv string) string { return "apps/" + cv + "/kustomization.yaml" }

// startWriteBackRepo serves a repository holding one kustomization per
// CV of the figure, on the first version each CV's ref will have.
func startWriteBackRepo(e *env, pop *population, n int) (*gitserver.Server, error) {
	files := map[string]string{}
	for i := 0; i < n; i++ {
		repo := fmt.Sprintf("%s/%s/app-%05d", pop.registryHost(), pop.prefix, i)
		files[wbPath(fmt.Sprintf("cv-%05d", i))] = "# written back by cvmanager\nresources:\n- deployment.yaml\nimages:\n- name: " +
			repo + "\n  newTag: v0 # set by cvmanager\n"
	}
	dir := filepath.Join(e.dir, "writeback-git")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return gitserver.Start(dir, "ci", "bench-token", files)
}

// createGitSecrets creates the credentials Secret in each namespace of
// the figure's CVs.
func createGitSecrets(ctx context.Context, e *env, pop *population, srv *gitserver.Server) error {
	seen := map[string]bool{}
	for _, m := range pop.members {
		if seen[m.ns] {
			continue
		}
		seen[m.ns] = true
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: m.ns},
			Data: map[string][]byte{"username": []byte(srv.User), "password": []byte(srv.Password)}}
		if _, err := e.kube.CoreV1().Secrets(m.ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// allWritten reports whether every CV's running version is in git.
func allWritten(ctx context.Context, e *env, pop *population) bool {
	for _, m := range pop.members {
		cv, err := e.cvs.CvmanagerV1alpha1().ContainerVersions(m.ns).Get(ctx, m.cv, metav1.GetOptions{})
		if err != nil {
			return false
		}
		wb := cv.Status.WriteBack
		if wb == nil || wb.State != cvv1.WriteBackWritten || wb.Digest != cv.Status.SuccessDigest {
			return false
		}
	}
	return true
}

// writeBackRound moves every CV's tag at once, triggers the rollouts and
// waits until each digest is in git (or writeBackWait passed); it returns
// the round's samples, with their finish times from the history records.
func writeBackRound(ctx context.Context, e *env, pop *population, watch *headWatch, res *writeBackResult) []*wbSample {
	var samples []*wbSample
	for _, m := range pop.members {
		if err := pop.push(m.ref); err != nil {
			res.Misses = append(res.Misses, fmt.Sprintf("%s: push: %v", m.cv, err))
			continue
		}
		s := &wbSample{m: m, digest: m.ref.digest}
		samples = append(samples, s)
		watch.expect(wbPath(m.cv), s)
	}
	for _, s := range samples {
		if err := e.trigger(ctx, pop.registryHost()+"/"+s.m.ref.path); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: trigger: %v", s.m.cv, err))
		}
	}
	waitFor(ctx, writeBackWait, func() bool { return watch.pending() == 0 })
	watch.forget()
	// The next round starts from rest: every rollout of this one finished.
	waitFor(ctx, writeBackWait, func() bool { return allWritten(ctx, e, pop) })
	store := history.NewStore(e.kube)
	for _, s := range samples {
		if rec, ok := successRecord(ctx, store, s); ok {
			s.finished = rec.Time
		}
	}
	return samples
}

// successRecord is the Success history record of s's rollout.
func successRecord(ctx context.Context, store *history.Store, s *wbSample) (history.Record, bool) {
	records, err := store.List(ctx, s.m.ns, history.WorkloadConfigMapName(s.m.deploy))
	if err != nil {
		return history.Record{}, false
	}
	for _, rec := range records {
		if rec.ToDigest == s.digest && rec.Outcome == history.OutcomeSuccess {
			return rec, true
		}
	}
	return history.Record{}, false
}

// summarizeWriteBack computes the figure from the samples: latencies,
// misses, the commits made and the records naming their commit.
func summarizeWriteBack(ctx context.Context, e *env, bare string, from plumbing.Hash, samples []*wbSample, res *writeBackResult) {
	var lat []time.Duration
	store := history.NewStore(e.kube)
	for _, s := range samples {
		switch {
		case s.finished.IsZero():
			res.Misses = append(res.Misses, fmt.Sprintf("%s %s: no Success history record", s.m.cv, s.digest))
		case s.visible.IsZero():
			res.Misses = append(res.Misses, fmt.Sprintf("%s %s: not in git %s after the round started", s.m.cv, s.digest, writeBackWait))
		default:
			d := s.visible.Sub(s.finished)
			lat = append(lat, d)
			res.AllMs = append(res.AllMs, ms(d))
			if rec, ok := successRecord(ctx, store, s); ok && rec.WriteBack != nil && rec.WriteBack.Commit == s.commit {
				res.RecordsNamingCommit++
			}
		}
	}
	res.Visible = summarize(lat, *writeBackCVs**writeBackRounds)
	res.Visible.Complete = len(lat) == res.Visible.Expected
	res.Commits = commitsSince(bare, from)
}

// commitsSince counts the commits on main after from.
func commitsSince(bare string, from plumbing.Hash) int {
	repo, err := git.PlainOpen(bare)
	if err != nil {
		return -1
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		return -1
	}
	iter, err := repo.Log(&git.LogOptions{From: ref.Hash()})
	if err != nil {
		return -1
	}
	n := 0
	_ = iter.ForEach(func(c *object.Commit) error {
		if c.Hash == from {
			return storer.ErrStop
		}
		n++
		return nil
	})
	return n
}

// headWatch reads the served repository's main every poll, as a fetch
// would see it, and marks each expected digest visible at the first read
// whose commit holds it in its CV's file.
type headWatch struct {
	bare string
	mu   sync.Mutex
	last plumbing.Hash
	// want maps a file to the sample whose digest it must come to hold.
	want map[string]*wbSample
	done chan struct{}
	once sync.Once
}

func newHeadWatch(bare string) *headWatch {
	w := &headWatch{bare: bare, want: map[string]*wbSample{}, done: make(chan struct{})}
	w.last = w.read()
	return w
}

// read is main's commit now: the loose ref git-receive-pack writes, else
// packed-refs. Reading the file costs no process and no request, so a
// 20 ms poll does not load the machine it measures.
func (w *headWatch) read() plumbing.Hash {
	if b, err := os.ReadFile(filepath.Join(w.bare, "refs", "heads", "main")); err == nil {
		return plumbing.NewHash(strings.TrimSpace(string(b)))
	}
	b, _ := os.ReadFile(filepath.Join(w.bare, "packed-refs"))
	for _, line := range strings.Split(string(b), "\n") {
		if hash, name, ok := strings.Cut(line, " "); ok && name == "refs/heads/main" {
			return plumbing.NewHash(hash)
		}
	}
	return plumbing.ZeroHash
}

func (w *headWatch) head() plumbing.Hash {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *headWatch) expect(path string, s *wbSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want[path] = s
}

func (w *headWatch) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.want)
}

// forget drops what was not seen: those samples are misses.
func (w *headWatch) forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want = map[string]*wbSample{}
}

func (w *headWatch) stop() { w.once.Do(func() { close(w.done) }) }

func (w *headWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case <-t.C:
		}
		if head := w.read(); head != w.head() && !head.IsZero() {
			w.saw(head, time.Now())
		}
	}
}

// saw marks the samples whose file at head holds their digest.
func (w *headWatch) saw(head plumbing.Hash, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = head
	repo, err := git.PlainOpen(w.bare)
	if err != nil {
		return
	}
	commit, err := repo.CommitObject(head)
	if err != nil {
		return
	}
	for path, s := range w.want {
		f, err := commit.File(path)
		if err != nil {
			continue
		}
		if content, err := f.Contents(); err == nil && strings.Contains(content, s.digest) {
			s.visible, s.commit = at, head.String()
			delete(w.want, path)
		}
	}
}

// write saves <date>-writeback-finish.json and .md under dir.
func (r *writeBackResult) write(dir string) error {
	if err := ensureDir(dir); err != nil {
		return err
	}
	base := filepath.Join(dir, r.Started.Format("2006-01-02T1504")+"-writeback-finish")
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", js.Bytes(), 0o644); err != nil {
		return err
	}
	md := r.markdown()
	fmt.Print(md)
	say("write-back results written to %s.json", base)
	return os.WriteFile(base+".md", []byte(md), 0o644)
}

func (r *writeBackResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Git write-back: rollout finished → commit visible in the remote, %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, load %s, %s. A real control plane and the real `cvmanager run` (flags `%s`, default\n"+
		"write-back settings: 200 ms batch window); git-http-backend from Debian's git behind Go's net/http/cgi with basic auth\n"+
		"on 127.0.0.1 (test/gitserver). %d CVs, each with a Kustomize target of its own in one repository, move at once, %d\n"+
		"rounds, triggered through `POST /v1/trigger`. Finished: the time of the rollout's Success history record (taken\n"+
		"before the status write that submits the write). Visible: the first read of the served repository's main (every\n"+
		"%.0f ms) whose commit holds the digest in the CV's file.\nCommand: `go run ./test/bench -writeback-only`.\n\n",
		r.Machine.Host, r.Machine.CPUs, r.Load, r.Machine.GoVersion, strings.Join(r.Flags, " "), r.CVs, r.Rounds, r.PollMs)
	verdict := "met"
	if !r.Visible.Complete || r.Visible.P99Ms > r.TargetP99Ms {
		verdict = "missed"
	}
	b.WriteString("| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| finished → visible p50 / p99 / max | %.1f / %.1f / %.1f ms |\n", r.Visible.P50Ms, r.Visible.P99Ms, r.Visible.MaxMs)
	fmt.Fprintf(&b, "| samples (expected) | %d (%d) |\n", r.Visible.Samples, r.Visible.Expected)
	fmt.Fprintf(&b, "| target p99 ≤ %.0f ms | %s |\n", r.TargetP99Ms, verdict)
	fmt.Fprintf(&b, "| commits for the %d rollouts | %d |\n", r.Visible.Expected, r.Commits)
	fmt.Fprintf(&b, "| history records naming the commit that made them visible | %d |\n", r.RecordsNamingCommit)
	fmt.Fprintf(&b, "| misses | %d |\n", len(r.Misses))
	fmt.Fprintf(&b, "| measured for | %.1f s |\n", r.Seconds)
	for _, m := range r.Misses {
		fmt.Fprintf(&b, "\nMiss: %s\n", m)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\nError: %s\n", e)
	}
	return b.String()
}
