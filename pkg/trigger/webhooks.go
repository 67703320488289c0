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
	"strings"

	"golang.org/x/time/rate"

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
}

// Webhooks serves registry push notifications. Docker Hub cannot sign its
// webhooks, so every source authenticates with a shared secret: as a bearer
// token (Distribution's endpoint headers, EventBridge API destinations) or
// as ?token= in the URL configured at Docker Hub.
type Webhooks struct {
	secret  [sha256.Size]byte
	cvs     cvlisters.ContainerVersionLister
	poller  Poller
	limiter *rate.Limiter
}

// NewWebhooks builds the handler; secret must be at least 16 characters.
// requestsPerSecond bounds all webhook calls together: each one scans the
// CVs, and registries retry a 429 later.
func NewWebhooks(secret string, cvs cvlisters.ContainerVersionLister, poller Poller, requestsPerSecond float64) (*Webhooks, error) {
	if len(secret) < 16 {
		return nil, errors.New("webhook secret must be at least 16 characters")
	}
	return &Webhooks{secret: sha256.Sum256([]byte(secret)), cvs: cvs, poller: poller, limiter: newLimiter(requestsPerSecond)}, nil
}

// Register mounts /v1/webhooks/{dockerhub,distribution,ecr}.
func (h *Webhooks) Register(mux server.Router) {
	mux.HandleFunc("POST /v1/webhooks/dockerhub", h.handle(ParseDockerHub))
	mux.HandleFunc("POST /v1/webhooks/distribution", h.handle(ParseDistribution))
	mux.HandleFunc("POST /v1/webhooks/ecr", h.handle(ParseECREvent))
}

func (h *Webhooks) handle(parse func([]byte) ([]Push, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authenticated(r) {
			httpError(w, http.StatusUnauthorized, "missing or invalid webhook secret")
			return
		}
		if !h.limiter.Allow() {
			tooMany(w)
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
		pushes, err := parse(body)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		triggered, err := h.schedule(r.Context(), pushes)
		if err != nil {
			// The registry retries a failed delivery: nothing is lost.
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"triggered": triggered})
	}
}

func (h *Webhooks) authenticated(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.URL.Query().Get("token")
	}
	if token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], h.secret[:]) == 1
}

func readLimited(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
}

// schedule polls every CV following a pushed repo:tag. Only a poll is
// scheduled: the digest still comes from the registry.
func (h *Webhooks) schedule(ctx context.Context, pushes []Push) ([]Triggered, error) {
	cvs, err := h.cvs.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := []Triggered{}
	for _, cv := range cvs {
		if follows(cv, pushes) {
			if err := h.poller.TriggerPoll(ctx, cv.Namespace, cv.Name, history.TriggerWebhook); err != nil {
				return nil, fmt.Errorf("recording the trigger of %s/%s: %w", cv.Namespace, cv.Name, err)
			}
			out = append(out, Triggered{cv.Namespace, cv.Name, fmt.Sprintf("/v1/cv/containerversions/%s/history?namespace=%s", cv.Name, cv.Namespace)})
		}
	}
	return out, nil
}

func follows(cv *cvv1.ContainerVersion, pushes []Push) bool {
	repo := imageref.NormalizeRepo(cv.Spec.ImageRepo)
	for _, p := range pushes {
		if p.Repo == repo && p.Tag == cv.Spec.Tag {
			return true
		}
	}
	return false
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
		pushes = append(pushes, Push{Repo: imageref.NormalizeRepo(e.Request.Host + "/" + e.Target.Repository), Tag: e.Target.Tag})
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
	return []Push{{Repo: imageref.NormalizeRepo(host + "/" + d.Repository), Tag: d.Tag}}, nil
}
