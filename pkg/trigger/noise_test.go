package trigger

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
)

// distributionEvent is one event in the envelope CNCF Distribution posts,
// with every field it sends (2.8 and 3.x shapes agree on these).
func distributionEvent(action, method, mediaType, repo, tag, host string) string {
	tagField := ""
	if tag != "" {
		tagField = fmt.Sprintf(`,"tag":%q`, tag)
	}
	return fmt.Sprintf(`{"events":[{"id":"8f0c2e4a-7d1b-4b8e-9c55-3f0a9d2b7e11","timestamp":"2026-12-06T23:10:41.171374Z",
"action":%q,"target":{"mediaType":%q,"size":32654,"digest":%q,"length":32654,"repository":%q,
"url":"http://%s/v2/%s/blobs/%s"%s},
"request":{"id":"4c6b1f5e-0a8d-4a57-b0d2-8a1e3c9f6d40","addr":"127.0.0.1:51234","host":%q,"method":%q,"useragent":"go-containerregistry/v0.20.6"},
"actor":{},"source":{"addr":"ci-runner:5000","instanceID":"a8b5c4d2-1e3f-4a5b-9c8d-7e6f5a4b3c2d"}}]}`,
		action, mediaType, sampleDigest, repo, host, repo, sampleDigest, tagField, host, method)
}

const (
	layerType    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	manifestType = "application/vnd.docker.distribution.manifest.v2+json"
)

func pubsub(action, tag string) string {
	data := fmt.Sprintf(`{"action":%q,"digest":"europe-west1-docker.pkg.dev/acme-prod/apps/web@%s","tag":%q}`, action, sampleDigest, tag)
	return `{"message":{"attributes":{},"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) +
		`","messageId":"2070443601311541","publishTime":"2026-12-06T23:10:41.123Z"},"subscription":"projects/acme-prod/subscriptions/cvmanager-push"}`
}

// noiseCase is one source: deliveries that cannot move a followed tag,
// and one that does.
type noiseCase struct {
	source string
	noise  map[string]string
	push   string
}

func noiseCases(t *testing.T) []noiseCase {
	reg := "reg.local:5000"
	harbor := string(sample(t, "harbor"))
	acr := string(sample(t, "acr"))
	github := string(sample(t, "github"))
	gitlab := string(sample(t, "gitlab"))
	ecr := ecrHook
	return []noiseCase{
		{"distribution", map[string]string{
			"blob push":                 distributionEvent("push", "PUT", layerType, "team/api", "", reg),
			"blob existence check":      distributionEvent("pull", "HEAD", layerType, "team/api", "", reg),
			"config blob pull":          distributionEvent("pull", "GET", "application/octet-stream", "team/api", "", reg),
			"manifest pull of the tag":  distributionEvent("pull", "GET", manifestType, "team/api", "env-prod", reg),
			"push of an unfollowed tag": distributionEvent("push", "PUT", manifestType, "team/api", "0a1b2c3", reg),
			"push by digest":            distributionEvent("push", "PUT", manifestType, "team/api", "", reg),
			"unfollowed repository":     distributionEvent("push", "PUT", manifestType, "team/other", "env-prod", reg),
			"delete":                    distributionEvent("delete", "DELETE", manifestType, "team/api", "", reg),
			"mount":                     distributionEvent("mount", "POST", layerType, "team/api", "", reg),
		}, distributionEvent("push", "PUT", manifestType, "team/api", "env-prod", reg)},
		{"gitlab", map[string]string{
			"blob push":                 distributionEvent("push", "PUT", layerType, "group/project/app", "", "registry.gitlab.example"),
			"manifest pull of the tag":  distributionEvent("pull", "GET", manifestType, "group/project/app", "env-prod", "registry.gitlab.example"),
			"push of an unfollowed tag": strings.ReplaceAll(gitlab, `"env-prod"`, `"feature-x"`),
		}, gitlab},
		{"dockerhub", map[string]string{
			"push of an unfollowed tag": strings.Replace(dockerHubHook, "env-prod", "0a1b2c3", 1),
			"unfollowed repository":     strings.Replace(dockerHubHook, "acme/web", "acme/other", 1),
		}, dockerHubHook},
		{"ecr", map[string]string{
			"delete":                    strings.Replace(ecr, `"PUSH"`, `"DELETE"`, 1),
			"failed push":               strings.Replace(ecr, `"SUCCESS"`, `"FAILURE"`, 1),
			"scan finished":             strings.Replace(ecr, `"ECR Image Action"`, `"ECR Image Scan"`, 1),
			"push of an unfollowed tag": strings.Replace(ecr, `"image-tag":"env-prod"`, `"image-tag":"0a1b2c3"`, 1),
		}, ecr},
		{"harbor", map[string]string{
			"pull":                      strings.Replace(harbor, "PUSH_ARTIFACT", "PULL_ARTIFACT", 1),
			"delete":                    strings.Replace(harbor, "PUSH_ARTIFACT", "DELETE_ARTIFACT", 1),
			"scan":                      strings.Replace(harbor, "PUSH_ARTIFACT", "SCANNING_COMPLETED", 1),
			"push of an unfollowed tag": strings.ReplaceAll(harbor, "env-prod", "0a1b2c3"),
		}, harbor},
		{"quay", map[string]string{
			"push of unfollowed tags": `{"repository":"acme/worker","namespace":"acme","name":"worker","docker_url":"quay.io/acme/worker","updated_tags":["0a1b2c3","latest"]}`,
			"unfollowed repository":   `{"repository":"acme/other","namespace":"acme","name":"other","docker_url":"quay.io/acme/other","updated_tags":["env-prod"]}`,
		}, string(sample(t, "quay"))},
		{"github", map[string]string{
			"ping":                      `{"zen":"Keep it simple.","hook_id":1}`,
			"push of an unfollowed tag": strings.ReplaceAll(github, `"env-prod"`, `"0a1b2c3"`),
		}, github},
		{"acr", map[string]string{
			"delete":                    strings.Replace(acr, `"action": "push"`, `"action": "delete"`, 1),
			"chart push":                strings.Replace(acr, `"action": "push"`, `"action": "chart_push"`, 1),
			"push of an unfollowed tag": strings.Replace(acr, `"tag": "env-prod"`, `"tag": "0a1b2c3"`, 1),
		}, acr},
		{"artifactregistry", map[string]string{
			"delete":                    pubsub("DELETE", "europe-west1-docker.pkg.dev/acme-prod/apps/web:env-prod"),
			"push of an unfollowed tag": pubsub("INSERT", "europe-west1-docker.pkg.dev/acme-prod/apps/web:0a1b2c3"),
		}, string(sample(t, "artifactregistry"))},
	}
}

// noiseHandler follows env-prod of each source's sample repository, with a
// webhook budget of one delivery per 1,000 s per source and repository.
func noiseHandler(t *testing.T) (*Webhooks, *http.ServeMux, *recordingPoller) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	repos := []string{"reg.local:5000/team/api", "registry.gitlab.example/group/project/app", "acme/web",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/svc", "harbor.example.com/team/api", "quay.io/acme/worker",
		"ghcr.io/acme/web", "myregistry.azurecr.io/team/svc", "europe-west1-docker.pkg.dev/acme-prod/apps/web",
		"reg.local:5000/team/web"}
	for i, repo := range repos {
		_ = indexer.Add(&cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cv" + strconv.Itoa(i)},
			Spec: cvv1.ContainerVersionSpec{ImageRepo: repo, Tag: "env-prod"}})
	}
	poller := &recordingPoller{}
	h, err := NewWebhooks(noiseSecret, cvlisters.NewContainerVersionLister(indexer), poller, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return h, mux, poller
}

const noiseSecret = "hook-secret-0123456789"

func deliver(mux http.Handler, source, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/v1/webhooks/"+source, strings.NewReader(body))
	if source == "github" {
		r.Header.Set("X-Hub-Signature-256", sign(noiseSecret, []byte(body)))
	} else {
		r.Header.Set("Authorization", "Bearer "+noiseSecret)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// TestWebhookNoiseIsAcceptedBeforeTheRateLimit: for every source, events
// that cannot move a followed tag (blob uploads, pulls, deletes, other
// tags and repositories) are answered 202 however many arrive, and spend
// nothing: the first push of a followed tag after them still triggers a
// poll. A second push of the same repository within the budget is refused
// with 429 and a Retry-After.
func TestWebhookNoiseIsAcceptedBeforeTheRateLimit(t *testing.T) {
	for _, tc := range noiseCases(t) {
		t.Run(tc.source, func(t *testing.T) {
			h, mux, poller := noiseHandler(t)
			for name, body := range tc.noise {
				for i := range 20 {
					if w := deliver(mux, tc.source, body); w.Code != http.StatusAccepted {
						t.Fatalf("%s #%d: status %d, want 202 (%s)", name, i, w.Code, w.Body)
					}
				}
			}
			if len(poller.got) != 0 {
				t.Fatalf("noise triggered polls: %v", poller.got)
			}
			if w := deliver(mux, tc.source, tc.push); w.Code != http.StatusAccepted || len(poller.got) != 1 {
				t.Fatalf("push of the followed tag after the noise: status %d, polls %v (%s)", w.Code, poller.got, w.Body)
			}
			w := deliver(mux, tc.source, tc.push)
			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("second push within the budget: status %d, want 429", w.Code)
			}
			if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("429 with Retry-After %q, want whole seconds ≥ 1", w.Header().Get("Retry-After"))
			}
			want := map[string]int{outcomeIgnored: 20 * len(tc.noise), outcomeTriggered: 1, outcomeLimited: 1}
			got := map[string]int{}
			for o := range want {
				got[o] = h.Deliveries(tc.source, o)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deliveries by outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWebhookBudgetIsPerSourceAndRepository: a repository over its budget
// does not hold back another repository, nor the same repository announced
// by another source.
func TestWebhookBudgetIsPerSourceAndRepository(t *testing.T) {
	_, mux, poller := noiseHandler(t)
	api := distributionEvent("push", "PUT", manifestType, "team/api", "env-prod", "reg.local:5000")
	web := distributionEvent("push", "PUT", manifestType, "team/web", "env-prod", "reg.local:5000")
	acrAPI := strings.TrimSuffix(strings.TrimPrefix(api, `{"events":[`), `]}`)
	steps := []struct {
		source, body string
		want         int
	}{
		{"distribution", api, http.StatusAccepted},
		{"distribution", api, http.StatusTooManyRequests},
		{"distribution", web, http.StatusAccepted},
		{"acr", acrAPI, http.StatusAccepted},
		{"acr", acrAPI, http.StatusTooManyRequests},
		{"distribution", web, http.StatusTooManyRequests},
	}
	for i, s := range steps {
		if w := deliver(mux, s.source, s.body); w.Code != s.want {
			t.Errorf("step %d (%s): status %d, want %d (%s)", i, s.source, w.Code, s.want, w.Body)
		}
	}
	if diff := cmp.Diff([]string{"ns/cv0:webhook", "ns/cv9:webhook", "ns/cv0:webhook"}, poller.got); diff != "" {
		t.Errorf("polls (-want +got):\n%s", diff)
	}
}
