package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// Limits on what is read from a registry for one digest, so a hostile
// repository cannot make the controller read without end.
const (
	maxPayloadBytes = 256 << 10
	maxSignatures   = 16
	maxCacheEntries = 4096
)

// Verifier checks digests against policies and remembers the answers.
type Verifier struct {
	// Reader fetches manifests, blobs and referrers (the registry layer).
	Reader registry.ArtifactReader
	// Clock ages cached refusals.
	Clock clock.PassiveClock
	// NegativeTTL is how long a refusal is reused before the registry is
	// asked again (default 30 s): CVs sharing a ref share the answer, and a
	// signature pushed late is still found within a poll or two.
	NegativeTTL time.Duration

	mu       sync.Mutex
	results  map[string]cached
	compiled map[string]*anchors
}

type cached struct {
	result Result
	at     time.Time
}

// New returns a Verifier reading through reader.
func New(reader registry.ArtifactReader, clk clock.PassiveClock) *Verifier {
	return &Verifier{Reader: reader, Clock: clk, NegativeTTL: 30 * time.Second}
}

// Verify tells whether digest in repo carries a signature matching p. An
// error means the registry could not be read (retry later); a refusal is a
// Result with Verified false.
func (v *Verifier) Verify(ctx context.Context, repo registry.Repo, digest string, p Policy) (Result, error) {
	cacheKey := repo.Name + "@" + digest + "|" + p.Hash()
	if r, ok := v.lookup(cacheKey); ok {
		return r, nil
	}
	a, err := v.anchorsFor(p)
	if err != nil {
		return Result{Reason: ReasonInvalidPolicy, Message: err.Error()}, nil
	}
	r, err := v.check(ctx, repo, digest, a)
	if err != nil {
		return Result{}, err
	}
	v.store(cacheKey, r)
	return r, nil
}

// check finds the signatures of digest and returns the best verdict: a
// verified signature wins; otherwise the most telling refusal.
func (v *Verifier) check(ctx context.Context, repo registry.Repo, digest string, a *anchors) (Result, error) {
	var refusals []Result
	sigs, err := v.tagScheme(ctx, repo, digest)
	if err != nil {
		return Result{}, err
	}
	for _, s := range sigs {
		r := s.verify(a, digest)
		if r.Verified {
			return r, nil
		}
		refusals = append(refusals, r)
	}
	bundles, err := v.bundles(ctx, repo, digest)
	if err != nil {
		return Result{}, err
	}
	for _, b := range bundles {
		r := verifyBundle(b, a, digest)
		if r.Verified {
			return r, nil
		}
		refusals = append(refusals, r)
	}
	return worst(refusals, digest), nil
}

// severity orders refusals: the one that tells the most about why an
// image was refused is reported when several signatures fail.
var severity = map[string]int{
	ReasonTamperedSignature: 5, ReasonDigestMismatch: 4, ReasonIdentityMismatch: 3, ReasonWrongKey: 2, ReasonUnsigned: 1,
}

func worst(refusals []Result, digest string) Result {
	if len(refusals) == 0 {
		return Result{Reason: ReasonUnsigned, Message: fmt.Sprintf("no signature found for %s (neither a cosign .sig tag nor a Sigstore bundle referrer)", digest)}
	}
	best := refusals[0]
	for _, r := range refusals[1:] {
		if severity[r.Reason] > severity[best.Reason] {
			best = r
		}
	}
	if len(refusals) > 1 {
		best.Message = fmt.Sprintf("%s (%d signatures checked, none verified)", best.Message, len(refusals))
	}
	return best
}

func (v *Verifier) lookup(cacheKey string) (Result, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.results[cacheKey]
	if !ok {
		return Result{}, false
	}
	if !c.result.Verified && v.Clock.Since(c.at) >= v.NegativeTTL {
		delete(v.results, cacheKey)
		return Result{}, false
	}
	return c.result, true
}

func (v *Verifier) store(cacheKey string, r Result) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.results == nil || len(v.results) >= maxCacheEntries {
		v.results = map[string]cached{} // bounded: a full cache starts afresh
	}
	v.results[cacheKey] = cached{result: r, at: v.Clock.Now()}
}

func (v *Verifier) anchorsFor(p Policy) (*anchors, error) {
	h := p.Hash()
	v.mu.Lock()
	a, ok := v.compiled[h]
	v.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := compile(p)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.compiled == nil || len(v.compiled) >= maxCacheEntries {
		v.compiled = map[string]*anchors{}
	}
	v.compiled[h] = a
	v.mu.Unlock()
	return a, nil
}

// sigTag is the cosign tag of digest's signatures: sha256-<hex>.sig.
func sigTag(digest, suffix string) string {
	return strings.Replace(digest, ":", "-", 1) + suffix
}

// notFound tells a missing manifest from a registry that cannot answer.
func notFound(err error) bool { return errors.Is(err, registry.ErrNotFound) }
