package trigger

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/imageref"
	"cvmanager.dev/cvmanager/pkg/server"
)

// Push is one "this repository's tag changed" notice from a registry.
type Push struct {
	Repo string // normalized: registry host + path, docker.io for Docker Hub
	Tag  string
	// Digest is the manifest digest the event names, when the source sends
	// one. The registry may announce a push before it serves the new digest
	// for the tag: with the digest known, the controller re-checks briefly
	// instead of waiting for the next poll.
	Digest string
}

// DigestPoller is a Poller that can also carry the digest a push event
// named, so the poll it asks for knows what it should find.
type DigestPoller interface {
	TriggerPollDigest(ctx context.Context, namespace, name, trigger, digest string) error
}

// Webhooks serves registry push notifications. Every source authenticates
// with the one shared secret, in the strongest form the source can send:
// GitHub signs the body with it (HMAC-SHA256, X-Hub-Signature-256); the
// others carry it, as a bearer token or a raw Authorization header
// (Distribution and GitLab endpoint headers, Harbor's auth header, ACR
// custom headers, EventBridge API destinations) or as ?token= in the URL
// (Docker Hub, Quay and Pub/Sub push cannot send headers).
type Webhooks struct {
	secret  [sha256.Size]byte
	key     []byte // the secret itself, only as GitHub's HMAC key
	cvs     cvlisters.ContainerVersionLister
	poller  Poller
	limits  *repoLimits
	metrics *webhookMetrics
	// observer learns the tag → digest of every push to a followed
	// repository (ObserveTags).
	observer TagObserver
}

// TagObserver learns which digest a pushed tag names. The registry layer
// (its version tag cache) is one: CI pushes the version tag and then moves
// the followed tag onto the same image, so the resolve the second event
// triggers knows the version tag without listing the repository.
type TagObserver interface {
	ObserveTag(repo, tag, digest string)
}

// ObserveTags hands every pushed tag → digest of a repository some CV
// follows to o (a verified delivery; it costs no request). Call before
// serving.
func (h *Webhooks) ObserveTags(o TagObserver) { h.observer = o }

// NewWebhooks builds the handler; secret must be at least 16 characters.
//
// requestsPerSecond bounds, per source and per repository, the deliveries
// that move a tag some CV follows: only those cost a poll. Everything else a
// registry announces (blob uploads, pulls, deletes, repositories and tags no
// CV follows) is answered 202 before any limit is consulted: a registry
// such as Distribution retries a refused delivery through one queue per
// endpoint and backs off, so refusing its noise would delay the next real
// push behind it.
func NewWebhooks(secret string, cvs cvlisters.ContainerVersionLister, poller Poller, requestsPerSecond float64) (*Webhooks, error) {
	if len(secret) < 16 {
		return nil, errors.New("webhook secret must be at least 16 characters")
	}
	return &Webhooks{secret: sha256.Sum256([]byte(secret)), key: []byte(secret), cvs: cvs, poller: poller,
		limits: newRepoLimits(requestsPerSecond), metrics: newWebhookMetrics()}, nil
}

// source is one push endpoint: how its payload reads and how it signs.
type source struct {
	parse func([]byte) ([]Push, error)
	// signed sources are verified from the body (GitHub's HMAC); the
	// others by the secret they carry.
	signed bool
}

// Sources names the push endpoints under /v1/webhooks/, for docs and tests.
var Sources = []string{"dockerhub", "distribution", "ecr", "github", "gitlab", "harbor", "quay", "acr", "artifactregistry"}

func sources() map[string]source {
	return map[string]source{
		"dockerhub":        {parse: ParseDockerHub},
		"distribution":     {parse: ParseDistribution},
		"ecr":              {parse: ParseECREvent},
		"github":           {parse: ParseGitHubPackage, signed: true},
		"gitlab":           {parse: ParseDistribution}, // GitLab's registry sends Distribution envelopes
		"harbor":           {parse: ParseHarbor},
		"quay":             {parse: ParseQuay},
		"acr":              {parse: ParseACR},
		"artifactregistry": {parse: ParsePubSubArtifactRegistry},
	}
}

// Register mounts /v1/webhooks/<source> for every source in Sources.
func (h *Webhooks) Register(mux server.Router) {
	all := sources()
	for _, name := range Sources {
		mux.HandleFunc("POST /v1/webhooks/"+name, h.handle(name, all[name]))
	}
}

func (h *Webhooks) handle(name string, src source) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !src.signed && !h.authenticated(r) {
			httpError(w, http.StatusUnauthorized, "missing or invalid webhook secret")
			return
		}
		body, err := readLimited(w, r)
		if err != nil {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			httpError(w, status, err.Error())
			return
		}
		if src.signed && !githubSignatureOK(h.key, r.Header.Get("X-Hub-Signature-256"), body) {
			httpError(w, http.StatusUnauthorized, "missing or invalid X-Hub-Signature-256")
			return
		}
		h.act(w, r, name, src, body)
	}
}

// act answers one authenticated delivery. The order matters: a delivery
// that names no followed repo:tag is accepted (202) before the rate limit
// is consulted, so only deliveries that cost a poll can spend the budget.
func (h *Webhooks) act(w http.ResponseWriter, r *http.Request, name string, src source, body []byte) {
	pushes, err := src.parse(body)
	if err != nil {
		h.metrics.outcome(name, outcomeInvalid)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	matches, err := h.match(pushes)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if len(matches) == 0 {
		h.metrics.outcome(name, outcomeIgnored)
		accepted(w, []Triggered{})
		return
	}
	if wait, ok := h.limits.allow(name, matchedRepos(matches)); !ok {
		h.metrics.outcome(name, outcomeLimited)
		tooManyFor(w, wait)
		return
	}
	triggered, err := h.trigger(r.Context(), matches)
	if err != nil {
		// The registry retries a failed delivery: nothing is lost.
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.metrics.outcome(name, outcomeTriggered)
	accepted(w, triggered)
}

func accepted(w http.ResponseWriter, triggered []Triggered) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"triggered": triggered})
}

// authenticated accepts the secret as "Authorization: Bearer <secret>", as
// a raw "Authorization: <secret>" (Harbor and GitLab send the configured
// value verbatim) or as ?token=, compared in constant time over hashes.
func (h *Webhooks) authenticated(r *http.Request) bool {
	for _, token := range candidateTokens(r) {
		if token == "" {
			continue
		}
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], h.secret[:]) == 1 {
			return true
		}
	}
	return false
}

func candidateTokens(r *http.Request) []string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if token, ok := strings.CutPrefix(auth, "Bearer "); ok {
			return []string{token}
		}
		return []string{auth}
	}
	return []string{r.URL.Query().Get("token")}
}

func readLimited(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
}

// match is one CV that follows a pushed repo:tag, with the push.
type match struct {
	cv   *cvv1.ContainerVersion
	push Push
}

// match finds the CVs following a pushed repo:tag. It reads the informer
// cache only, so answering noise costs no API or registry request. Pushes
// with a digest to a followed repository go to the observer on the way.
func (h *Webhooks) match(pushes []Push) ([]match, error) {
	if len(pushes) == 0 {
		return nil, nil
	}
	cvs, err := h.cvs.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []match
	followedRepo := make([]bool, len(pushes)) // per push: some CV follows its repository
	for _, cv := range cvs {
		repo := imageref.NormalizeRepo(cv.Spec.ImageRepo)
		if push, ok := follows(repo, cv.Spec.Tag, pushes, followedRepo); ok {
			out = append(out, match{cv, push})
		}
	}
	if h.observer != nil {
		for i, p := range pushes {
			if p.Digest != "" && followedRepo[i] {
				h.observer.ObserveTag(p.Repo, p.Tag, p.Digest)
			}
		}
	}
	return out, nil
}

// matchedRepos lists the distinct repositories of matches, which the rate
// limit is counted against.
func matchedRepos(matches []match) []string {
	var repos []string
	for _, m := range matches {
		if !slices.Contains(repos, m.push.Repo) {
			repos = append(repos, m.push.Repo)
		}
	}
	return repos
}

// trigger records a poll request for every match. Only a poll is
// scheduled: the digest still comes from the registry.
func (h *Webhooks) trigger(ctx context.Context, matches []match) ([]Triggered, error) {
	out := []Triggered{}
	for _, m := range matches {
		cv := m.cv
		if err := h.triggerPoll(ctx, cv, m.push.Digest); err != nil {
			return nil, fmt.Errorf("recording the trigger of %s/%s: %w", cv.Namespace, cv.Name, err)
		}
		out = append(out, Triggered{cv.Namespace, cv.Name, fmt.Sprintf("/v1/cv/containerversions/%s/history?namespace=%s", cv.Name, cv.Namespace)})
	}
	return out, nil
}

// schedule polls every CV following a pushed repo:tag (match, then
// trigger), without a rate limit.
func (h *Webhooks) schedule(ctx context.Context, pushes []Push) ([]Triggered, error) {
	matches, err := h.match(pushes)
	if err != nil {
		return nil, err
	}
	return h.trigger(ctx, matches)
}

func (h *Webhooks) triggerPoll(ctx context.Context, cv *cvv1.ContainerVersion, digest string) error {
	if dp, ok := h.poller.(DigestPoller); ok && digest != "" {
		return dp.TriggerPollDigest(ctx, cv.Namespace, cv.Name, history.TriggerWebhook, digest)
	}
	return h.poller.TriggerPoll(ctx, cv.Namespace, cv.Name, history.TriggerWebhook)
}

// follows returns the last push of repo:tag (a CV's, repo normalized):
// with several events for one tag in a delivery, the newest names the
// digest to expect. It marks in followedRepo the pushes to repo.
func follows(repo, tag string, pushes []Push, followedRepo []bool) (Push, bool) {
	var found Push
	ok := false
	for i, p := range pushes {
		if p.Repo != repo {
			continue
		}
		followedRepo[i] = true
		if p.Tag == tag {
			found, ok = p, true
		}
	}
	return found, ok
}

// validDigest keeps a digest only when it is well formed (algorithm:hex),
// so a malformed one cannot make a poll wait for something never served.
func validDigest(d string) string {
	if _, err := digest.Parse(d); err != nil {
		return ""
	}
	return d
}

// ParseDockerHub reads a Docker Hub repository webhook.
func ParseDockerHub(body []byte) ([]Push, error) {
	var hook struct {
		PushData struct {
			Tag string `json:"tag"`
		} `json:"push_data"`
		Repository struct {
			RepoName string `json:"repo_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		return nil, fmt.Errorf("invalid Docker Hub webhook: %v", err)
	}
	if hook.Repository.RepoName == "" || hook.PushData.Tag == "" {
		return nil, errors.New("Docker Hub webhook without repository.repo_name or push_data.tag")
	}
	return []Push{{Repo: imageref.NormalizeRepo(hook.Repository.RepoName), Tag: hook.PushData.Tag}}, nil
}

// ParseDistribution reads a CNCF Distribution notification envelope; only
// manifest pushes with a tag matter.
func ParseDistribution(body []byte) ([]Push, error) {
	var envelope struct {
		Events []struct {
			Action string `json:"action"`
			Target struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
				Digest     string `json:"digest"`
			} `json:"target"`
			Request struct {
				Host string `json:"host"`
			} `json:"request"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return nil, fmt.Errorf("invalid Distribution notification: %v", err)
	}
	var pushes []Push
	for _, e := range envelope.Events {
		if e.Action != "push" || e.Target.Tag == "" || e.Target.Repository == "" || e.Request.Host == "" {
			continue
		}
		pushes = append(pushes, Push{Repo: imageref.NormalizeRepo(e.Request.Host + "/" + e.Target.Repository), Tag: e.Target.Tag,
			Digest: validDigest(e.Target.Digest)})
	}
	return pushes, nil
}

// ParseECREvent reads an EventBridge "ECR Image Action" event delivered to
// an HTTP target.
func ParseECREvent(body []byte) ([]Push, error) {
	var event struct {
		DetailType string `json:"detail-type"`
		Account    string `json:"account"`
		Region     string `json:"region"`
		Detail     struct {
			ActionType string `json:"action-type"`
			Result     string `json:"result"`
			Repository string `json:"repository-name"`
			Tag        string `json:"image-tag"`
			Digest     string `json:"image-digest"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		return nil, fmt.Errorf("invalid EventBridge event: %v", err)
	}
	d := event.Detail
	if event.DetailType != "ECR Image Action" || d.ActionType != "PUSH" || d.Result != "SUCCESS" || d.Tag == "" {
		return nil, nil // other ECR events are fine, they just trigger nothing
	}
	if event.Account == "" || event.Region == "" || d.Repository == "" {
		return nil, errors.New("ECR event without account, region or repository-name")
	}
	host := fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com", event.Account, event.Region)
	return []Push{{Repo: imageref.NormalizeRepo(host + "/" + d.Repository), Tag: d.Tag, Digest: validDigest(d.Digest)}}, nil
}
