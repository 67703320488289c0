package writeback

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// repoCache keeps in-memory clones between writes, so a write fetches only
// what is new. Each clone is used by one group at a time.
type repoCache struct {
	mu    sync.Mutex
	max   int
	repos map[string]*cachedRepo
}

type cachedRepo struct {
	mu   sync.Mutex
	repo *git.Repository
	used time.Time
}

func newRepoCache(max int) *repoCache {
	return &repoCache{max: max, repos: map[string]*cachedRepo{}}
}

// get returns the locked clone for key, creating an empty one (with remote
// origin at url) when needed; the caller unlocks it.
func (c *repoCache) get(key, url string) (*cachedRepo, error) {
	c.mu.Lock()
	r := c.repos[key]
	if r == nil {
		if len(c.repos) >= c.max {
			c.evictOldest()
		}
		repo, err := git.Init(memory.NewStorage(), nil)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		r = &cachedRepo{repo: repo}
		c.repos[key] = r
	}
	c.mu.Unlock()
	r.mu.Lock()
	r.used = time.Now()
	return r, nil
}

func (c *repoCache) evictOldest() {
	var oldest string
	var at time.Time
	for k, r := range c.repos {
		if r.mu.TryLock() {
			if oldest == "" || r.used.Before(at) {
				oldest, at = k, r.used
			}
			r.mu.Unlock()
		}
	}
	if oldest != "" {
		delete(c.repos, oldest)
	}
}

// drop forgets a clone (after an error that may have left it odd).
func (c *repoCache) drop(key string) {
	c.mu.Lock()
	delete(c.repos, key)
	c.mu.Unlock()
}

// remoteConn is how to reach a remote: the auth method and extra CAs.
type remoteConn struct {
	auth transport.AuthMethod
	ca   []byte
}

// connect turns credentials into the way to reach url.
func connect(rawURL string, c Credentials) (remoteConn, error) {
	am, err := auth(rawURL, c)
	return remoteConn{auth: am, ca: c.CABundle}, err
}

// auth turns credentials into a go-git auth method for url.
func auth(rawURL string, c Credentials) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, errors.New("the URL does not parse as a git URL")
	}
	switch ep.Protocol {
	case "http", "https":
		switch {
		case c.Token != "":
			user := c.Username
			if user == "" {
				user = "git"
			}
			return &githttp.BasicAuth{Username: user, Password: c.Token}, nil
		case c.Username != "" || c.Password != "":
			return &githttp.BasicAuth{Username: c.Username, Password: c.Password}, nil
		}
		return nil, nil
	case "ssh":
		if len(c.SSHKey) == 0 {
			return nil, errors.New("an ssh URL needs an SSH key in the Secret (identityKey)")
		}
		if len(c.KnownHosts) == 0 {
			return nil, errors.New("an ssh URL needs known_hosts in the Secret (knownHostsKey): the host key is always checked")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, c.SSHKey, "")
		if err != nil {
			return nil, errors.New("the SSH key in the Secret does not parse")
		}
		cb, err := knownHostsCallback(c.KnownHosts)
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	return nil, fmt.Errorf("unsupported protocol %q", ep.Protocol)
}

// knownHostsCallback checks host keys against known_hosts lines; the
// x/crypto parser reads files only, so the lines pass through one.
func knownHostsCallback(lines []byte) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "cvmanager-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(lines); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, errors.New("the known_hosts in the Secret do not parse")
	}
	return cb, nil
}

// redactURL drops user info from a URL for messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil && u.Scheme != "" {
		u.User = nil
		return u.String()
	}
	return raw
}

// fetchBranch brings branch (and, when extra is set, that branch too) into
// the clone and returns their heads (zero when absent on the remote).
func fetchBranch(ctx context.Context, repo *git.Repository, rc remoteConn, branches ...string) (map[string]plumbing.Hash, error) {
	rem, err := repo.Remote("origin")
	if err != nil {
		return nil, err
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: rc.auth, CABundle: rc.ca})
	if err != nil {
		return nil, err
	}
	heads := map[string]plumbing.Hash{}
	var specs []config.RefSpec
	for _, b := range branches {
		for _, r := range refs {
			if r.Name() == plumbing.NewBranchReferenceName(b) {
				heads[b] = r.Hash()
				specs = append(specs, config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", b, b)))
			}
		}
	}
	if len(specs) == 0 {
		return heads, nil
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs, Auth: rc.auth, CABundle: rc.ca, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, err
	}
	// The listed heads may be older than what the fetch brought: read back.
	for _, b := range branches {
		if ref, err := repo.Reference(plumbing.NewRemoteReferenceName("origin", b), true); err == nil {
			if _, ok := heads[b]; ok {
				heads[b] = ref.Hash()
			}
		}
	}
	return heads, nil
}

// findTrailers walks up to depth commits from head and returns, for each
// wanted trailer line, the commit that carries it.
func findTrailers(repo *git.Repository, head plumbing.Hash, depth int, want map[string]bool) (map[string]plumbing.Hash, error) {
	found := map[string]plumbing.Hash{}
	if head.IsZero() || len(want) == 0 {
		return found, nil
	}
	iter, err := repo.Log(&git.LogOptions{From: head})
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	n := 0
	err = iter.ForEach(func(c *object.Commit) error {
		if n++; n > depth {
			return io.EOF
		}
		if !strings.Contains(c.Message, Trailer) {
			return nil
		}
		for _, line := range strings.Split(c.Message, "\n") {
			line = strings.TrimSpace(line)
			if want[line] {
				if _, seen := found[line]; !seen {
					found[line] = c.Hash
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return found, nil
}

// fileSet is the batch's view of the files it edits: read from the base
// tree on first use, then edited in memory.
type fileSet struct {
	tree    *object.Tree
	content map[string][]byte
	orig    map[string][]byte
}

func newFileSet(tree *object.Tree) *fileSet {
	return &fileSet{tree: tree, content: map[string][]byte{}, orig: map[string][]byte{}}
}

func (fs *fileSet) read(p string) ([]byte, error) {
	if b, ok := fs.content[p]; ok {
		return b, nil
	}
	f, err := fs.tree.File(p)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", p, err)
	}
	if !f.Mode.IsRegular() && f.Mode != filemode.Executable {
		return nil, fmt.Errorf("target %s is not a regular file (a symlink or submodule); name the file itself", p)
	}
	s, err := f.Contents()
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", p, err)
	}
	fs.content[p], fs.orig[p] = []byte(s), []byte(s)
	return []byte(s), nil
}

// apply edits every target of req; on error nothing of req is kept.
func (fs *fileSet) apply(req Request) (changed bool, err error) {
	staged := map[string][]byte{}
	for _, t := range req.Spec.Targets {
		p := path.Clean(strings.TrimPrefix(t.Path, "/"))
		src, ok := staged[p]
		if !ok {
			if src, err = fs.read(p); err != nil {
				return false, err
			}
		}
		out, err := EditTarget(src, t, req.image(), req.setterName())
		if err != nil {
			return false, fmt.Errorf("target %s (%s): %w", p, t.Kind, err)
		}
		staged[p] = out
	}
	for p, b := range staged {
		if string(fs.content[p]) != string(b) {
			changed = true
		}
		fs.content[p] = b
	}
	return changed, nil
}

// changedFiles lists the files whose content differs from the base.
func (fs *fileSet) changedFiles() map[string][]byte {
	out := map[string][]byte{}
	for p, b := range fs.content {
		if string(b) != string(fs.orig[p]) {
			out[p] = b
		}
	}
	return out
}

// writeTree stores files over base and returns the new root tree's hash.
func writeTree(repo *git.Repository, base *object.Tree, files map[string][]byte) (plumbing.Hash, error) {
	s := repo.Storer
	byDir := map[string]map[string][]byte{}
	for p, b := range files {
		dir, name := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if byDir[dir] == nil {
			byDir[dir] = map[string][]byte{}
		}
		byDir[dir][name] = b
	}
	return rewriteTree(s, base, "", byDir)
}

type objectStorer interface {
	NewEncodedObject() plumbing.EncodedObject
	SetEncodedObject(plumbing.EncodedObject) (plumbing.Hash, error)
}

// rewriteTree rewrites tree t (at dir) with the new blobs of byDir below it.
func rewriteTree(s objectStorer, t *object.Tree, dir string, byDir map[string]map[string][]byte) (plumbing.Hash, error) {
	entries := append([]object.TreeEntry(nil), t.Entries...)
	for i, e := range entries {
		child := path.Join(dir, e.Name)
		if e.Mode == filemode.Dir && hasBelow(byDir, child) {
			sub, err := t.Tree(e.Name)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			h, err := rewriteTree(s, sub, child, byDir)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			entries[i].Hash = h
			continue
		}
		if b, ok := byDir[dir][e.Name]; ok && e.Mode.IsFile() {
			h, err := storeBlob(s, b)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			entries[i].Hash = h
		}
	}
	nt := &object.Tree{Entries: entries}
	obj := s.NewEncodedObject()
	if err := nt.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func hasBelow(byDir map[string]map[string][]byte, dir string) bool {
	for d := range byDir {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			return true
		}
	}
	return false
}

func storeBlob(s objectStorer, b []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(b)))
	wr, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := wr.Write(b); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// storeCommit writes a commit of tree over parents.
func storeCommit(repo *git.Repository, tree plumbing.Hash, parents []plumbing.Hash, msg string, author *cvv1.GitAuthor, now time.Time) (plumbing.Hash, error) {
	sig := object.Signature{Name: "cvmanager", Email: "cvmanager@localhost", When: now}
	if author != nil {
		sig.Name, sig.Email = author.Name, author.Email
	}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents}
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// push updates branch from old to commit, never forced: the remote must
// still be at old (RequireRemoteRefs), and the update is a fast-forward.
func push(ctx context.Context, repo *git.Repository, rc remoteConn, branch string, old, commit plumbing.Hash) error {
	dst := plumbing.NewBranchReferenceName(branch)
	opts := &git.PushOptions{RemoteName: "origin", Auth: rc.auth, CABundle: rc.ca,
		RefSpecs: []config.RefSpec{config.RefSpec(commit.String() + ":" + dst.String())}}
	if !old.IsZero() {
		opts.RequireRemoteRefs = []config.RefSpec{config.RefSpec(old.String() + ":" + dst.String())}
	}
	err := repo.PushContext(ctx, opts)
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// pushRefused marks a push the remote (or the ref check before it)
// refused because the branch moved: another round fetches and retries.
type pushRefused struct{ error }

func (e pushRefused) Unwrap() error { return e.error }

// permanent says a git error will not go away by retrying the same request.
func permanent(err error) bool {
	var pe permanentErr
	if err != nil && strings.Contains(err.Error(), "ssh: handshake failed") {
		return true // host key or SSH authentication: retrying will not help
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return true
	}
	return errors.As(err, &pe) || errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound) || errors.Is(err, transport.ErrInvalidAuthMethod) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// describeGitErr turns go-git's errors into a reason a person can act on.
func describeGitErr(err error) string {
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownCA) || (errors.As(err, &verify) && strings.Contains(msg, "unknown authority")):
		return "the server's certificate is signed by an unknown authority: for a private CA, name its certificates in writeBack.secretRef.caKey"
	case errors.As(err, &verify):
		return "the server's certificate is not valid: " + verify.Err.Error()
	case strings.Contains(msg, "knownhosts: key mismatch"):
		return "the SSH host key does not match the known_hosts in writeBack.secretRef"
	case strings.Contains(msg, "knownhosts: key is unknown"):
		return "the SSH host is not in the known_hosts in writeBack.secretRef"
	case strings.Contains(msg, "ssh: handshake failed") && strings.Contains(msg, "unable to authenticate"):
		return "SSH authentication failed: check the key in writeBack.secretRef"
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return "authentication failed: check the credentials in writeBack.secretRef"
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return "authorization failed: the credentials in writeBack.secretRef may not push to it"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return "repository not found (or the credentials may not read it)"
	}
	return err.Error()
}
