package trigger

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/tools/cache"

	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/imageref"
)

// FuzzDecodeTriggerRequest feeds arbitrary bodies to the trigger request
// decoder: it answers 400 or 413 for anything it refuses, and what it
// accepts names exactly one target (a CV or an image:tag).
func FuzzDecodeTriggerRequest(f *testing.F) {
	for _, seed := range []string{`{"namespace":"prod","name":"web"}`, `{"image":"reg/web","tag":"env-prod"}`,
		`{"namespace":"prod","name":"web","image":"reg/web","tag":"env-prod"}`, `{"name":"web"}`, `{}`, `null`, `[]`,
		`{"namespace":"a","name":"b","extra":1}`, `{"namespace":"a","name":"b"} trailing`, `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/trigger", strings.NewReader(string(body)))
		req, status, err := decode(w, r)
		if err != nil {
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refused with status %d: %v", status, err)
			}
			if len(body) > MaxBodyBytes+1 && status == 0 {
				t.Fatalf("oversized body accepted")
			}
			return
		}
		byName := req.Name != "" && req.Namespace != ""
		byImage := req.Image != "" && req.Tag != ""
		if byName == byImage {
			t.Fatalf("accepted a request naming %d targets: %+v", btoi(byName)+btoi(byImage), req)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzWebhookAuth sends arbitrary tokens and bodies to every webhook
// endpoint: nothing but the exact secret is ever accepted, whatever the
// body, and no request makes the handler panic.
func FuzzWebhookAuth(f *testing.F) {
	const secret = "hook-secret-0123456789"
	for _, seed := range [][2]string{{secret, dockerHubHook}, {secret[:10], dockerHubHook}, {secret + "0", ecrHook},
		{"", distributionHook}, {" " + secret, "{"}, {strings.ToUpper(secret), dockerHubHook}, {secret + "\x00", "null"}} {
		f.Add(seed[0], []byte(seed[1]), true)
	}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	h, err := NewWebhooks(secret, cvlisters.NewContainerVersionLister(indexer), &recordingPoller{}, 1e6)
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	f.Fuzz(func(t *testing.T, token string, body []byte, asHeader bool) {
		for _, source := range Sources {
			path := "/v1/webhooks/" + source
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
			if asHeader {
				r.Header.Set("Authorization", "Bearer "+token)
			} else {
				r.URL.RawQuery = "token=" + escapeQuery(token)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if token != secret && w.Code != http.StatusUnauthorized {
				t.Fatalf("%s with token %q: status %d, want 401", path, token, w.Code)
			}
		}
	})
}

func escapeQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "#", "%23", " ", "%20").Replace(s)
}

// FuzzGitHubSignature: no signature header but the HMAC-SHA256 of the very
// body under the secret is accepted, whatever the body and header.
func FuzzGitHubSignature(f *testing.F) {
	const secret = "hook-secret-0123456789"
	body := []byte(`{"action":"published"}`)
	for _, sig := range []string{sign(secret, body), sign(secret, body)[:20], "sha256=", "sha1=" + strings.Repeat("0", 40),
		strings.ToUpper(sign(secret, body)), sign(secret, body) + "00", ""} {
		f.Add(sig, body)
	}
	f.Fuzz(func(t *testing.T, signature string, body []byte) {
		want := sign(secret, body)
		got := githubSignatureOK([]byte(secret), signature, body)
		// hex decoding accepts upper case digits: the same bytes, the same MAC.
		hexSum, prefixed := strings.CutPrefix(signature, "sha256=")
		if expected := prefixed && strings.EqualFold(hexSum, want[len("sha256="):]); got != expected {
			t.Fatalf("signature %q over %q: accepted=%v, want %v", signature, body, got, expected)
		}
	})
}

// FuzzParseWebhookPayloads feeds arbitrary bodies to the registry
// payload parsers: none panics, and every push they return names a
// repository and a tag, with the repository already normalized (the
// handler compares it with NormalizeRepo of each CV's imageRepo).
func FuzzParseWebhookPayloads(f *testing.F) {
	for _, seed := range []string{dockerHubHook, distributionHook, ecrHook, `{}`, `null`, `[]`, `{"events":null}`,
		`{"events":[{"action":"push","target":{"repository":"x","tag":"t"},"request":{"host":"docker.io"}}]}`,
		`{"push_data":{"tag":"t"},"repository":{"repo_name":"index.docker.io/x"}}`,
		`{"detail-type":"ECR Image Action","account":"1","region":"r","detail":{"action-type":"PUSH","result":"SUCCESS","repository-name":"a/b","image-tag":"t"}}`,
		`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"t","resource_url":"h:1/a:t"}]}}`,
		`{"docker_url":"quay.io/a/b","updated_tags":["t",""]}`, `{"action":"push","target":{"repository":"a","tag":"t"},"request":{"host":"x.azurecr.io"}}`,
		`{"message":{"data":"eyJhY3Rpb24iOiJJTlNFUlQiLCJ0YWciOiJhOjEvYjp0In0="}}`,
		`{"action":"published","package":{"package_type":"container","name":"n","owner":{"login":"O"},"package_version":{"container_metadata":{"tag":{"name":"t"}}}}}`} {
		f.Add([]byte(seed))
	}
	for _, name := range []string{"github", "harbor", "quay", "gitlab", "acr", "artifactregistry"} {
		f.Add(sample(f, name))
	}
	parsers := map[string]func([]byte) ([]Push, error){"dockerhub": ParseDockerHub, "distribution": ParseDistribution, "ecr": ParseECREvent,
		"github": ParseGitHubPackage, "harbor": ParseHarbor, "quay": ParseQuay, "acr": ParseACR, "artifactregistry": ParsePubSubArtifactRegistry}
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range parsers {
			pushes, err := parse(body)
			if err != nil {
				if len(pushes) != 0 {
					t.Fatalf("%s: error %v with %d pushes", name, err, len(pushes))
				}
				continue
			}
			for _, p := range pushes {
				if p.Repo == "" || p.Tag == "" {
					t.Fatalf("%s: push without repository or tag: %+v", name, p)
				}
				if n := imageref.NormalizeRepo(p.Repo); n != p.Repo {
					t.Fatalf("%s: push repository %q is not normalized (%q): no CV would ever match it", name, p.Repo, n)
				}
				if p.Digest != "" && validDigest(p.Digest) != p.Digest {
					t.Fatalf("%s: push digest %q is malformed: a poll would wait for it in vain", name, p.Digest)
				}
			}
		}
	})
}
