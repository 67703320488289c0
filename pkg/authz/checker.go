package authz

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Cache lifetimes of review answers. A grant is trusted a little longer
// than a denial, so that granting a missing right shows within seconds
// while a revoked one is noticed within half a minute (the reviews are
// re-asked before every rollout step that acts, through this cache).
const (
	DefaultAllowTTL = 30 * time.Second
	DefaultDenyTTL  = 10 * time.Second
	// maxEntries bounds the cache; expired entries are swept when it is
	// reached, and if that frees too little, it is emptied.
	maxEntries = 100_000
)

// Checker answers "may identity do permission?" with
// LocalSubjectAccessReviews, which are namespaced: a controller installed
// for a few namespaces needs no cluster-wide right to ask them.
type Checker struct {
	kube     kubernetes.Interface
	clock    clock.Clock
	allowTTL time.Duration
	denyTTL  time.Duration

	mu      sync.Mutex
	answers map[string]answer

	reviews, hits atomic.Int64

	// Observe, when set, is told each answer: "allowed" or "denied" (a
	// review was sent) or "cached" (metrics).
	Observe func(answer string)
}

type answer struct {
	allowed bool
	expires time.Time
}

// NewChecker asks kube; clk may be nil (the real clock).
func NewChecker(kube kubernetes.Interface, clk clock.Clock) *Checker {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Checker{kube: kube, clock: clk, allowTTL: DefaultAllowTTL, denyTTL: DefaultDenyTTL, answers: map[string]answer{}}
}

// Stats are the reviews sent and the answers served from the cache.
type Stats struct{ Reviews, CacheHits int64 }

// Stats reports the checker's counters (tests and the metrics read them).
func (c *Checker) Stats() Stats { return Stats{Reviews: c.reviews.Load(), CacheHits: c.hits.Load()} }

// Missing checks every permission and returns the ones id lacks, in order.
// An error means a review could not be asked (retry later); it is never a
// denial.
func (c *Checker) Missing(ctx context.Context, id Identity, perms []Permission) ([]Permission, error) {
	var missing []Permission
	for _, p := range perms {
		ok, err := c.Allowed(ctx, id, p)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// Allowed answers one permission, from the cache when it can.
//
// A permission on one named object is first asked for every object of its
// resource in the namespace (Name ""): an authorizer that allows a verb on
// all of a resource's objects allows it on each (RBAC grants only add up),
// and that one answer, cached, serves every CV of the author in the
// namespace. A burst of 1,000 first rollouts by one author then costs one
// review per verb and resource, not one per workload. Only when the broad
// question is denied is the named one asked.
func (c *Checker) Allowed(ctx context.Context, id Identity, p Permission) (bool, error) {
	if p.Name != "" {
		broad := p
		broad.Name = ""
		if ok, err := c.allowed(ctx, id, broad); err != nil || ok {
			return ok, err
		}
	}
	return c.allowed(ctx, id, p)
}

// allowed answers one permission exactly as asked, from the cache when it can.
func (c *Checker) allowed(ctx context.Context, id Identity, p Permission) (bool, error) {
	key := id.key() + "\x01" + p.key()
	now := c.clock.Now()
	c.mu.Lock()
	a, ok := c.answers[key]
	c.mu.Unlock()
	if ok && now.Before(a.expires) {
		c.hits.Add(1)
		c.observe("cached")
		return a.allowed, nil
	}
	allowed, err := c.review(ctx, id, p)
	if err != nil {
		return false, err
	}
	if allowed {
		c.observe("allowed")
	} else {
		c.observe("denied")
	}
	ttl := c.denyTTL
	if allowed {
		ttl = c.allowTTL
	}
	c.store(key, answer{allowed: allowed, expires: now.Add(ttl)}, now)
	return allowed, nil
}

func (c *Checker) review(ctx context.Context, id Identity, p Permission) (bool, error) {
	c.reviews.Add(1)
	review := &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace},
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.User, Groups: id.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: p.Namespace, Verb: p.Verb, Group: p.Group, Resource: p.Resource, Name: p.Name,
			},
		},
	}
	out, err := c.kube.AuthorizationV1().LocalSubjectAccessReviews(p.Namespace).Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking whether %s may %s: %w", id.User, p, err)
	}
	return out.Status.Allowed && !out.Status.Denied, nil
}

func (c *Checker) store(key string, a answer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) >= maxEntries {
		for k, old := range c.answers {
			if !now.Before(old.expires) {
				delete(c.answers, k)
			}
		}
		if len(c.answers) >= maxEntries*9/10 {
			c.answers = map[string]answer{}
		}
	}
	c.answers[key] = a
}

func (c *Checker) observe(answer string) {
	if c.Observe != nil {
		c.Observe(answer)
	}
}
