package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
)

const sampleDigest = "sha256:1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a"

func sample(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestSourceSamplePayloads: each source's sample delivery (testdata/webhooks)
// reads as the repo, tag and digest a CV would match.
func TestSourceSamplePayloads(t *testing.T) {
	cases := []struct {
		source string
		parse  func([]byte) ([]Push, error)
		want   []Push
	}{
		{"github", ParseGitHubPackage, []Push{{Repo: "ghcr.io/acme/web", Tag: "env-prod", Digest: sampleDigest}}},
		{"harbor", ParseHarbor, []Push{{Repo: "harbor.example.com/team/api", Tag: "env-prod", Digest: sampleDigest}}},
		{"quay", ParseQuay, []Push{{Repo: "quay.io/acme/worker", Tag: "env-prod"}, {Repo: "quay.io/acme/worker", Tag: "latest"}}},
		{"gitlab", ParseDistribution, []Push{{Repo: "registry.gitlab.example/group/project/app", Tag: "env-prod", Digest: sampleDigest}}},
		{"acr", ParseACR, []Push{{Repo: "myregistry.azurecr.io/team/svc", Tag: "env-prod", Digest: sampleDigest}}},
		{"artifactregistry", ParsePubSubArtifactRegistry, []Push{{Repo: "europe-west1-docker.pkg.dev/acme-prod/apps/web", Tag: "env-prod", Digest: sampleDigest}}},
	}
	for _, tc := range cases {
		t.Run(tc.source, func(t *testing.T) {
			got, err := tc.parse(sample(t, tc.source))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pushes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSourcesIgnoreOtherEvents: deletions, pings and untagged uploads are
// accepted (the source must not retry them) but trigger nothing; broken
// payloads are refused.
func TestSourcesIgnoreOtherEvents(t *testing.T) {
	cases := []struct {
		name    string
		parse   func([]byte) ([]Push, error)
		body    string
		wantErr bool
	}{
		{"github ping", ParseGitHubPackage, `{"zen":"Keep it simple.","hook_id":1}`, false},
		{"github npm package", ParseGitHubPackage, strings.Replace(string(sample(t, "github")), `"package_type": "CONTAINER"`, `"package_type": "npm"`, 1), false},
		{"github untagged", ParseGitHubPackage, `{"action":"published","registry_package":{"package_type":"CONTAINER","package_version":{"container_metadata":{"tag":{"name":""}}}}}`, false},
		{"harbor delete", ParseHarbor, strings.Replace(string(sample(t, "harbor")), "PUSH_ARTIFACT", "DELETE_ARTIFACT", 1), false},
		{"acr delete", ParseACR, strings.Replace(string(sample(t, "acr")), `"action": "push"`, `"action": "delete"`, 1), false},
		{"artifact registry delete", ParsePubSubArtifactRegistry, `{"message":{"data":"eyJhY3Rpb24iOiJERUxFVEUiLCJ0YWciOiJhL2I6YyJ9"}}`, false},
		{"pubsub data not base64", ParsePubSubArtifactRegistry, `{"message":{"data":"%%%"}}`, true},
		{"pubsub tag without a tag", ParsePubSubArtifactRegistry, `{"message":{"data":"eyJhY3Rpb24iOiJJTlNFUlQiLCJ0YWciOiJob3N0OjUwMDAvYSJ9"}}`, true},
		{"quay without docker_url", ParseQuay, `{"updated_tags":["x"]}`, true},
		{"acr push without host", ParseACR, `{"action":"push","target":{"repository":"a","tag":"t"}}`, true},
	}
	for _, tc := range cases {
		got, err := tc.parse([]byte(tc.body))
		if (err != nil) != tc.wantErr || len(got) != 0 {
			t.Errorf("%s: pushes %v, error %v (want error: %v)", tc.name, got, err, tc.wantErr)
		}
	}
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestSourcesAuthentication: each source is accepted only with the secret
// in the form it can send, and GitHub only with a signature of this body.
func TestSourcesAuthentication(t *testing.T) {
	const secret = "hook-secret-0123456789"
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	_ = indexer.Add(&cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "ghcr.io/acme/web", Tag: "env-prod"}})
	poller := &recordingPoller{}
	h, err := NewWebhooks(secret, cvlisters.NewContainerVersionLister(indexer), poller, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	github := sample(t, "github")
	cases := []struct {
		name, source, query string
		header              map[string]string
		body                []byte
		want                int
	}{
		{"github signed", "github", "", map[string]string{"X-Hub-Signature-256": sign(secret, github)}, github, http.StatusAccepted},
		{"github signed with another key", "github", "", map[string]string{"X-Hub-Signature-256": sign(secret+"x", github)}, github, http.StatusUnauthorized},
		{"github signature of another body", "github", "", map[string]string{"X-Hub-Signature-256": sign(secret, []byte("{}"))}, github, http.StatusUnauthorized},
		{"github with the secret as a bearer token only", "github", "", map[string]string{"Authorization": "Bearer " + secret}, github, http.StatusUnauthorized},
		{"github SHA-1 signature", "github", "", map[string]string{"X-Hub-Signature": "sha1=00"}, github, http.StatusUnauthorized},
		{"harbor raw auth header", "harbor", "", map[string]string{"Authorization": secret}, sample(t, "harbor"), http.StatusAccepted},
		{"harbor wrong header", "harbor", "", map[string]string{"Authorization": secret[:12]}, sample(t, "harbor"), http.StatusUnauthorized},
		{"gitlab raw auth header", "gitlab", "", map[string]string{"Authorization": secret}, sample(t, "gitlab"), http.StatusAccepted},
		{"acr bearer", "acr", "", map[string]string{"Authorization": "Bearer " + secret}, sample(t, "acr"), http.StatusAccepted},
		{"quay token in the URL", "quay", "token=" + secret, nil, sample(t, "quay"), http.StatusAccepted},
		{"quay without token", "quay", "", nil, sample(t, "quay"), http.StatusUnauthorized},
		{"pub/sub token in the URL", "artifactregistry", "token=" + secret, nil, sample(t, "artifactregistry"), http.StatusAccepted},
		{"pub/sub OIDC bearer is not the secret", "artifactregistry", "", map[string]string{"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"}, sample(t, "artifactregistry"), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, "/v1/webhooks/"+tc.source+"?"+tc.query, strings.NewReader(string(tc.body)))
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.want, w.Body)
		}
	}
	if diff := cmp.Diff([]string{"a/web:webhook"}, poller.got); diff != "" {
		t.Errorf("polls (-want +got):\n%s", diff)
	}
}
