package trigger

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
)

const (
	dockerHubHook    = `{"push_data":{"tag":"env-prod","pusher":"ci"},"repository":{"repo_name":"acme/web","namespace":"acme","name":"web"}}`
	distributionHook = `{"events":[{"action":"pull","target":{"repository":"team/api","tag":"env-prod"},"request":{"host":"reg.local:5000"}},
{"action":"push","target":{"repository":"team/api","tag":"env-prod","digest":"sha256:aa"},"request":{"host":"reg.local:5000"}}]}`
	ecrHook = `{"version":"0","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","region":"eu-west-1",
"detail":{"result":"SUCCESS","repository-name":"team/svc","image-digest":"sha256:bb","action-type":"PUSH","image-tag":"env-prod"}}`
)

func TestParsers(t *testing.T) {
	cases := []struct {
		name  string
		parse func([]byte) ([]Push, error)
		body  string
		want  []Push
	}{
		{"docker hub", ParseDockerHub, dockerHubHook, []Push{{Repo: "docker.io/acme/web", Tag: "env-prod"}}},
		{"distribution: only pushes", ParseDistribution, distributionHook, []Push{{Repo: "reg.local:5000/team/api", Tag: "env-prod"}}},
		{"ecr push", ParseECREvent, ecrHook, []Push{{Repo: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/svc", Tag: "env-prod"}}},
		{"ecr delete triggers nothing", ParseECREvent, strings.Replace(ecrHook, `"PUSH"`, `"DELETE"`, 1), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pushes (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`{`, `[]`, `{"push_data":{}}`} {
		if _, err := ParseDockerHub([]byte(bad)); err == nil {
			t.Errorf("ParseDockerHub(%s): want an error", bad)
		}
	}
}

func TestWebhooksAuthAndMatching(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, cv := range []*cvv1.ContainerVersion{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web"}, Spec: cvv1.ContainerVersionSpec{ImageRepo: "acme/web", Tag: "env-prod"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "web"}, Spec: cvv1.ContainerVersionSpec{ImageRepo: "docker.io/acme/web", Tag: "env-stage"}},
	} {
		_ = indexer.Add(cv)
	}
	poller := &recordingPoller{}
	const secret = "hook-secret-0123456789"
	h, err := NewWebhooks(secret, cvlisters.NewContainerVersionLister(indexer), poller, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	send := func(path, auth, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name, path, auth string
		want             int
	}{
		{"token in URL", "/v1/webhooks/dockerhub?token=" + secret, "", http.StatusAccepted},
		{"bearer", "/v1/webhooks/dockerhub", "Bearer " + secret, http.StatusAccepted},
		{"no secret", "/v1/webhooks/dockerhub", "", http.StatusUnauthorized},
		{"prefix of the secret", "/v1/webhooks/dockerhub?token=" + secret[:10], "", http.StatusUnauthorized},
		{"secret with a suffix", "/v1/webhooks/dockerhub", "Bearer " + secret + "0", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		if got := send(tc.path, tc.auth, dockerHubHook); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := send("/v1/webhooks/distribution", "Bearer "+secret, "{not json"); got != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", got)
	}
	// Only a/web follows acme/web:env-prod; b/web follows env-stage.
	if diff := cmp.Diff([]string{"a/web:webhook", "a/web:webhook"}, poller.got); diff != "" {
		t.Errorf("polls (-want +got):\n%s", diff)
	}
	if _, err := NewWebhooks("short", nil, nil, 1); err == nil {
		t.Error("short secret accepted")
	}
}

func FuzzParseWebhooks(f *testing.F) {
	for _, seed := range []string{dockerHubHook, distributionHook, ecrHook, `{}`, `{"events":[{}]}`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) ([]Push, error){ParseDockerHub, ParseDistribution, ParseECREvent} {
			pushes, err := parse(body)
			if err != nil && pushes != nil {
				t.Fatalf("error with results: %v %v", err, pushes)
			}
			for _, p := range pushes {
				if p.Repo == "" || p.Tag == "" {
					t.Fatalf("empty push from %q: %+v", body, p)
				}
			}
		}
	})
}

// BenchmarkScheduleAmong10000CVs measures what one push costs the webhook
// handler when it has to find its CVs among 10,000 (it tests each).
func BenchmarkScheduleAmong10000CVs(b *testing.B) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for i := range 10000 {
		_ = indexer.Add(&cvv1.ContainerVersion{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i/1000), Name: fmt.Sprintf("cv-%d", i)},
			Spec:       cvv1.ContainerVersionSpec{ImageRepo: fmt.Sprintf("registry.example:5000/team/app-%d", i/10), Tag: "env-prod"},
		})
	}
	poller := &recordingPoller{}
	h, err := NewWebhooks("hook-secret-0123456789", cvlisters.NewContainerVersionLister(indexer), poller, 1000)
	if err != nil {
		b.Fatal(err)
	}
	push := []Push{{Repo: "registry.example:5000/team/app-7", Tag: "env-prod"}}
	for b.Loop() {
		if got, _ := h.schedule(context.Background(), push); len(got) != 10 {
			b.Fatalf("scheduled %d CVs, want 10", len(got))
		}
	}
}

// TestTriggerAndWebhooksAreRateLimited: past the budget an authenticated
// caller gets 429 with Retry-After and nothing is polled; the budget is
// spent only by authenticated calls, so strangers cannot exhaust it.
func TestTriggerAndWebhooksAreRateLimited(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = indexer.Add(&cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "acme/web", Tag: "env-prod"}})
	lister := cvlisters.NewContainerVersionLister(indexer)
	poller := &recordingPoller{}
	const secret = "hook-secret-0123456789"
	hooks, err := NewWebhooks(secret, lister, poller, 0.001) // a burst of one, then one per 1,000 s
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	hooks.Register(mux)
	New([]APIKey{{Name: "ci", Key: goodKey}}, lister, poller, 0.001).Register(mux)
	calls := []struct {
		path, auth, body string
		want             int
	}{
		{"/v1/trigger", "Bearer wrong-key-0123456789", `{"namespace":"a","name":"web"}`, http.StatusUnauthorized},
		{"/v1/trigger", "Bearer " + goodKey, `{"namespace":"a","name":"web"}`, http.StatusAccepted},
		{"/v1/trigger", "Bearer " + goodKey, `{"namespace":"a","name":"web"}`, http.StatusTooManyRequests},
		{"/v1/webhooks/dockerhub", "", dockerHubHook, http.StatusUnauthorized},
		{"/v1/webhooks/dockerhub", "Bearer " + secret, dockerHubHook, http.StatusAccepted},
		{"/v1/webhooks/dockerhub", "Bearer " + secret, dockerHubHook, http.StatusTooManyRequests},
	}
	for i, c := range calls {
		req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("call %d to %s: %d, want %d (%s)", i, c.path, rec.Code, c.want, rec.Body)
		}
		if c.want == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Errorf("call %d: 429 without Retry-After", i)
		}
	}
	if diff := cmp.Diff([]string{"a/web:trigger", "a/web:webhook"}, poller.got); diff != "" {
		t.Errorf("polls (-want +got):\n%s", diff)
	}
}
