// Package trigger is the authenticated push endpoint CI calls after moving a
// tag, so a rollout starts in well under a second instead of at the next
// poll. It only schedules an immediate poll: the registry stays the source
// of truth, so a trigger can never deploy something the tag does not name.
package trigger

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/server"
)

// MaxBodyBytes bounds a trigger request; a real one is a few hundred bytes.
const MaxBodyBytes = 64 << 10

// APIKey is one accepted key. Several keys allow rotation without downtime.
type APIKey struct {
	Name string
	// Key is the secret itself; only its SHA-256 is kept after New.
	Key string
	// Namespaces the key may trigger; empty means all.
	Namespaces []string
}

// Poller records a request for an immediate poll of a CV, which the
// leading controller acts on (controller.Requests): an error means the
// request was not recorded.
type Poller interface {
	TriggerPoll(ctx context.Context, namespace, name, trigger string) error
}

// FailureClearer forgets a CV's failed version (the controller).
type FailureClearer interface {
	ClearFailed(ctx context.Context, namespace, name string) error
}

// Handler serves POST /v1/trigger.
type Handler struct {
	keys    []hashedKey
	cvs     cvlisters.ContainerVersionLister
	poller  Poller
	limiter *rate.Limiter
}

type hashedKey struct {
	name       string
	sum        [sha256.Size]byte
	namespaces []string
}

// New builds the handler. requestsPerSecond bounds all trigger calls
// together (a misbehaving CI loop must not hammer the registries).
func New(keys []APIKey, cvs cvlisters.ContainerVersionLister, poller Poller, requestsPerSecond float64) *Handler {
	h := &Handler{cvs: cvs, poller: poller, limiter: newLimiter(requestsPerSecond)}
	for _, k := range keys {
		if k.Key == "" {
			continue // an empty key would accept an empty Authorization header
		}
		h.keys = append(h.keys, hashedKey{name: k.Name, sum: sha256.Sum256([]byte(k.Key)), namespaces: k.Namespaces})
	}
	return h
}

// newLimiter allows requestsPerSecond with a burst of two seconds' worth
// plus one: a CI job that deploys its services triggers them one after
// another, and 20 back to back at the default 10/s were answered 429 from
// the 12th on, each then waiting out its Retry-After (issue 31 asks 20
// back-to-back triggers to patch within 500 ms). The sustained rate stays
// --trigger-rate.
func newLimiter(requestsPerSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(requestsPerSecond), Burst(requestsPerSecond))
}

// Burst is how many triggers the API takes back to back at
// requestsPerSecond: two seconds' worth plus one.
func Burst(requestsPerSecond float64) int {
	return int(2*requestsPerSecond) + 1
}

func tooMany(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	httpError(w, http.StatusTooManyRequests, "too many requests, retry in a second")
}

// Register mounts the routes.
func (h *Handler) Register(mux server.Router) {
	mux.HandleFunc("POST /v1/trigger", h.serve)
	if clearer, ok := h.poller.(FailureClearer); ok {
		mux.HandleFunc("POST /v1/cv/workloads/{name}/clear-failed", h.clearFailed(clearer))
	}
}

// clearFailed is the manual override after a failed rollout: with the same
// API key as triggers, the failed version is forgotten and polled again.
func (h *Handler) clearFailed(clearer FailureClearer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := h.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cvmanager"`)
			httpError(w, http.StatusUnauthorized, "missing or invalid API key")
			return
		}
		namespace, name := r.URL.Query().Get("namespace"), r.PathValue("name")
		if namespace == "" {
			httpError(w, http.StatusBadRequest, "the namespace query parameter is required")
			return
		}
		if !allowed(key, namespace) {
			httpError(w, http.StatusForbidden, fmt.Sprintf("key %q may not act on namespace %s", key.name, namespace))
			return
		}
		err := clearer.ClearFailed(r.Context(), namespace, name)
		if apierrors.IsNotFound(err) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("no ContainerVersion %s/%s", namespace, name))
			return
		}
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// Request names what to poll: one CV, or every CV following image:tag.
type Request struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Image     string `json:"image,omitempty"`
	Tag       string `json:"tag,omitempty"`
}

// Triggered is one CV whose poll was scheduled, and where to watch it.
type Triggered struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Watch     string `json:"watch"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	key, ok := h.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cvmanager"`)
		httpError(w, http.StatusUnauthorized, "missing or invalid API key")
		return
	}
	if !h.limiter.Allow() {
		tooMany(w)
		return
	}
	req, status, err := decode(w, r)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	targets, status, err := h.targets(req, key)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	out := make([]Triggered, 0, len(targets))
	for _, cv := range targets {
		if err := h.poller.TriggerPoll(r.Context(), cv.Namespace, cv.Name, history.TriggerAPI); err != nil {
			httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("recording the trigger of %s/%s: %v", cv.Namespace, cv.Name, err))
			return
		}
		out = append(out, Triggered{cv.Namespace, cv.Name, fmt.Sprintf("/v1/cv/containerversions/%s/history?namespace=%s", cv.Name, cv.Namespace)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"triggered": out})
}

// authenticate compares the bearer token against every key in constant time.
// Hashing first makes the comparison length-independent, and the whole key
// must match: a prefix or a key with extra characters is rejected.
func (h *Handler) authenticate(r *http.Request) (hashedKey, bool) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || token == "" {
		return hashedKey{}, false
	}
	sum := sha256.Sum256([]byte(token))
	var match hashedKey
	matched := 0
	for _, k := range h.keys {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			match, matched = k, 1
		}
	}
	return match, matched == 1
}

func decode(w http.ResponseWriter, r *http.Request) (Request, int, error) {
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", MaxBodyBytes)
		}
		return req, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %v", err)
	}
	byName := req.Name != "" && req.Namespace != ""
	byImage := req.Image != "" && req.Tag != ""
	if byName == byImage {
		return req, http.StatusBadRequest, errors.New(`name either a CV ({"namespace","name"}) or an image ({"image","tag"})`)
	}
	return req, 0, nil
}

func (h *Handler) targets(req Request, key hashedKey) ([]*cvv1.ContainerVersion, int, error) {
	if req.Name != "" {
		if !allowed(key, req.Namespace) {
			return nil, http.StatusForbidden, fmt.Errorf("key %q may not trigger namespace %s", key.name, req.Namespace)
		}
		cv, err := h.cvs.ContainerVersions(req.Namespace).Get(req.Name)
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound, fmt.Errorf("no ContainerVersion %s/%s", req.Namespace, req.Name)
		}
		if err != nil {
			return nil, http.StatusInternalServerError, err
		}
		return []*cvv1.ContainerVersion{cv}, 0, nil
	}
	all, err := h.cvs.List(labels.Everything())
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	var out []*cvv1.ContainerVersion
	for _, cv := range all {
		if cv.Spec.ImageRepo == req.Image && cv.Spec.Tag == req.Tag && allowed(key, cv.Namespace) {
			out = append(out, cv)
		}
	}
	if len(out) == 0 {
		return nil, http.StatusNotFound, fmt.Errorf("no ContainerVersion follows %s:%s", req.Image, req.Tag)
	}
	return out, 0, nil
}

func allowed(key hashedKey, namespace string) bool {
	return len(key.namespaces) == 0 || slices.Contains(key.namespaces, namespace)
}

func httpError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}
