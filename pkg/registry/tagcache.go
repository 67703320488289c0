package registry

import (
	"cmp"
	"regexp"
	"slices"
	"sync"

	"github.com/Masterminds/semver/v3"
)

// versionTags remembers, per repository, the digest of every version tag
// (a tag matching some CV's versionSyntax) it has HEADed, and the tags of
// the last listing. It is what makes a new digest cost O(new tags): a
// version tag such as a git SHA or a release number is pushed once and
// never moved, so once its digest is known it need not be asked again, and
// a later resolve HEADs only the tags that appeared since the last list.
//
// The assumption is stated in docs/registries.md: a version tag that is
// re-pushed to another image keeps its old digest here until something
// HEADs it again: the ordinary poll of a CV following the version tag
// itself, or a search that found no new or unknown tag carrying the digest
// (then the known tags are asked again, newest first). Either corrects the
// entry and logs the re-push.
//
// Bounded: at most maxRepos repositories (least recently used dropped
// first) and maxTags digests per repository (oldest first). All CVs of a
// repository share its entry, whatever their versionSyntax.
type versionTags struct {
	maxRepos, maxTags int

	mu    sync.Mutex
	tick  uint64
	repos map[string]*repoTags
}

type repoTags struct {
	used    uint64
	digests map[string]string // version tag → digest, for tags HEADed
	order   []string          // keys of digests, oldest first, for eviction
	listed  map[string]bool   // the version tags of the last listing
}

// Default bounds: 10,000 is ECR's limit of images per repository; 1,024
// repositories × a few hundred tags × ~120 bytes stays in tens of MB at most.
const (
	defaultVersionCacheRepos = 1024
	defaultVersionCacheTags  = 10000
)

func newVersionTags(maxRepos, maxTags int) *versionTags {
	if maxRepos <= 0 {
		maxRepos = defaultVersionCacheRepos
	}
	if maxTags <= 0 {
		maxTags = defaultVersionCacheTags
	}
	return &versionTags{maxRepos: maxRepos, maxTags: maxTags, repos: map[string]*repoTags{}}
}

// repo returns repo's entry, making it (and evicting the least recently
// used one) when needed. Called with mu held.
func (c *versionTags) repo(name string) *repoTags {
	c.tick++
	r, ok := c.repos[name]
	if !ok {
		if len(c.repos) >= c.maxRepos {
			oldest := ""
			for n, e := range c.repos {
				if oldest == "" || e.used < c.repos[oldest].used {
					oldest = n
				}
			}
			delete(c.repos, oldest)
		}
		r = &repoTags{digests: map[string]string{}, listed: map[string]bool{}}
		c.repos[name] = r
	}
	r.used = c.tick
	return r
}

// observe records that tag points to digest now. It returns the digest it
// remembered before, when that differs: the version tag was re-pushed.
func (c *versionTags) observe(repo, tag, digest string) (previous string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.repo(repo)
	old, known := r.digests[tag]
	if !known {
		r.order = append(r.order, tag)
		if len(r.order) > c.maxTags {
			delete(r.digests, r.order[0])
			r.order = r.order[1:]
		}
	}
	r.digests[tag] = digest
	if known && old != digest {
		return old
	}
	return ""
}

// carrying is the lowest sorting tag matching syntax known to carry
// digest, "" when none is.
func (c *versionTags) carrying(repo, digest string, syntax *regexp.Regexp) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.repos[repo]
	if !ok {
		return ""
	}
	known := ""
	for tag, d := range r.digests {
		if d == digest && syntax.MatchString(tag) && (known == "" || tag < known) {
			known = tag
		}
	}
	return known
}

// plan splits the candidates of a fresh listing: known is the first
// (lowest sorting) candidate already known to carry digest. Otherwise the
// tags to HEAD, in this order and each newest first: fresh (new since the
// last listing), stale (listed before but never HEADed, or evicted), and
// last others (known to carry another digest: only a re-pushed version
// tag can match there). The listing becomes the last one.
func (c *versionTags) plan(repo string, candidates []string, digest string) (known string, fresh, stale, others []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.repo(repo)
	listed := make(map[string]bool, len(candidates))
	for _, tag := range candidates {
		listed[tag] = true
		d, cached := r.digests[tag]
		switch {
		case cached && d == digest:
			if known == "" || tag < known {
				known = tag
			}
		case cached:
			others = append(others, tag)
		case r.listed[tag]:
			stale = append(stale, tag)
		default:
			fresh = append(fresh, tag)
		}
	}
	r.listed = listed
	return known, newestFirst(fresh), newestFirst(stale), newestFirst(others)
}

// newestFirst orders version tags newest first: semantic versions by
// precedence, above other tags; other tags (git SHAs have no order) in
// reverse lexical order, so numbered builds such as 1041 come before 1040.
func newestFirst(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	type keyed struct {
		tag string
		v   *semver.Version
	}
	ks := make([]keyed, len(tags))
	for i, t := range tags {
		v, _ := semver.NewVersion(t)
		ks[i] = keyed{t, v}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		switch {
		case a.v != nil && b.v != nil:
			if c := b.v.Compare(a.v); c != 0 {
				return c
			}
		case a.v != nil:
			return -1
		case b.v != nil:
			return 1
		}
		if len(a.tag) != len(b.tag) && isDigits(a.tag) && isDigits(b.tag) {
			return cmp.Compare(len(b.tag), len(a.tag))
		}
		return cmp.Compare(b.tag, a.tag)
	})
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.tag
	}
	return out
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
