package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// protectedReadPrefix covers every read endpoint that shows what runs where:
// the workloads view, history pages and /v1/state. Anything added under it
// later is protected too (fail closed).
const protectedReadPrefix = "/v1/"

// ReadAuth protects the read endpoints with the cluster's own identities, as
// kcd did: the caller sends a Kubernetes bearer token (a ServiceAccount token,
// or an OIDC token the apiserver accepts), the apiserver says who it is
// (TokenReview) and whether it may read ContainerVersions in the namespace
// asked about (SubjectAccessReview). Probes and /metrics stay open; the
// mutation endpoints have their own keys.
type ReadAuth struct {
	Kube kubernetes.Interface
	// TTL bounds how long a decision is reused: an auto-refreshing dashboard
	// costs two reviews per TTL, and a revoked token works at most this long.
	TTL time.Duration
	// Clock is injectable so tests move time; NewReadAuth uses the real clock.
	Clock clock.Clock

	mu        sync.Mutex
	decisions map[decisionKey]decision
}

// maxCachedDecisions bounds the cache; past it, expired entries go first.
const maxCachedDecisions = 4096

type decisionKey struct {
	token [sha256.Size]byte // a hash: the cache never holds a token
	attrs authorizationv1.ResourceAttributes
}

type decision struct {
	status  int // 0 = allowed, else the HTTP status to answer
	message string
	expires time.Time
}

// NewReadAuth returns a ReadAuth that caches decisions for 30 seconds.
func NewReadAuth(kube kubernetes.Interface) *ReadAuth {
	return &ReadAuth{Kube: kube, TTL: 30 * time.Second, Clock: clock.RealClock{}}
}

// Wrap returns next behind the check.
func (a *ReadAuth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs, protected := readAccess(r)
		if !protected {
			next.ServeHTTP(w, r)
			return
		}
		d, err := a.decide(r.Context(), bearerToken(r), attrs)
		if err != nil {
			klog.ErrorS(err, "Cannot check a read request's token", "path", r.URL.Path)
			http.Error(w, "cannot check the token with the Kubernetes API right now", http.StatusServiceUnavailable)
			return
		}
		if d.status != 0 {
			if d.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cvmanager"`)
			}
			http.Error(w, d.message, d.status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readAccess says what a request needs: list ContainerVersions in the
// namespace it asks about ("" = every namespace), which is also what a
// workload's history page needs (it shows what the namespace's CVs did to
// one of its workloads), or get the one CV whose history it shows.
func readAccess(r *http.Request) (authorizationv1.ResourceAttributes, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || !strings.HasPrefix(r.URL.Path, protectedReadPrefix) {
		return authorizationv1.ResourceAttributes{}, false
	}
	attrs := authorizationv1.ResourceAttributes{
		Group: cvv1.GroupName, Resource: "containerversions", Verb: "list",
		Namespace: r.URL.Query().Get("namespace"),
	}
	switch {
	case r.URL.Path == "/v1/cv/workloads", r.URL.Path == "/v1/cv/activity", r.URL.Path == "/v1/cv/metrics":
		// These views honour ?namespace= and show nothing outside it.
	case isOneSegment(strings.CutPrefix(r.URL.Path, "/v1/cv/workloads/")):
	case isCVHistory(r.URL.Path):
		attrs.Verb, attrs.Name = "get", strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, cvHistoryPrefix), "/history")
	default:
		attrs.Namespace = "" // /v1/state and anything new: every namespace
	}
	return attrs, true
}

const cvHistoryPrefix = "/v1/cv/containerversions/"

func isOneSegment(rest string, found bool) bool {
	return found && rest != "" && !strings.Contains(rest, "/")
}

// isCVHistory matches /v1/cv/containerversions/{name}/history.
func isCVHistory(path string) bool {
	name, ok := strings.CutSuffix(strings.TrimPrefix(path, cvHistoryPrefix), "/history")
	return strings.HasPrefix(path, cvHistoryPrefix) && ok && name != "" && !strings.Contains(name, "/")
}

func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func (a *ReadAuth) decide(ctx context.Context, token string, attrs authorizationv1.ResourceAttributes) (decision, error) {
	if token == "" {
		return decision{status: http.StatusUnauthorized, message: "a Kubernetes bearer token is required: Authorization: Bearer <token>"}, nil
	}
	key := decisionKey{token: sha256.Sum256([]byte(token)), attrs: attrs}
	if d, ok := a.cached(key); ok {
		return d, nil
	}
	d, err := a.review(ctx, token, attrs)
	if err != nil {
		return decision{}, err
	}
	a.remember(key, d)
	return d, nil
}

// review asks the apiserver who the token belongs to and whether that user
// may do what the request needs.
func (a *ReadAuth) review(ctx context.Context, token string, attrs authorizationv1.ResourceAttributes) (decision, error) {
	tr, err := a.Kube.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return decision{status: http.StatusUnauthorized, message: "the Kubernetes API did not accept the bearer token"}, nil
	}
	user := tr.Status.User
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra(user.Extra), ResourceAttributes: &attrs,
	}}
	sar, err = a.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	if !sar.Status.Allowed {
		return decision{status: http.StatusForbidden, message: denial(user.Username, attrs)}, nil
	}
	return decision{}, nil
}

func extra(in map[string]authenticationv1.ExtraValue) map[string]authorizationv1.ExtraValue {
	out := make(map[string]authorizationv1.ExtraValue, len(in))
	for k, v := range in {
		out[k] = authorizationv1.ExtraValue(v)
	}
	return out
}

func denial(user string, attrs authorizationv1.ResourceAttributes) string {
	what := fmt.Sprintf("%s %s.%s", attrs.Verb, attrs.Resource, attrs.Group)
	if attrs.Name != "" {
		what += " " + attrs.Name
	}
	if attrs.Namespace == "" {
		return fmt.Sprintf("%s may not %s in every namespace (add ?namespace= to ask about one)", user, what)
	}
	return fmt.Sprintf("%s may not %s in namespace %s", user, what, attrs.Namespace)
}

func (a *ReadAuth) cached(key decisionKey) (decision, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.decisions[key]
	if !ok || !a.Clock.Now().Before(d.expires) {
		return decision{}, false
	}
	return d, true
}

func (a *ReadAuth) remember(key decisionKey, d decision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.Clock.Now()
	if a.decisions == nil {
		a.decisions = map[decisionKey]decision{}
	}
	if len(a.decisions) >= maxCachedDecisions {
		for k, old := range a.decisions {
			if !now.Before(old.expires) {
				delete(a.decisions, k)
			}
		}
	}
	if len(a.decisions) >= maxCachedDecisions {
		clear(a.decisions) // all fresh: a flood of distinct tokens; start over
	}
	d.expires = now.Add(a.TTL)
	a.decisions[key] = d
}
