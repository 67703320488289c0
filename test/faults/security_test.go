package faults

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// Planted secrets: each must never appear anywhere a person or another
// tenant can read (logs, Events, status, history, HTTP answers).
const (
	pullUser      = "ci-robot"
	pullPassword  = "pull-PW-7f3a9c1e55d2"
	apiKey        = "trigger-KEY-4b8e2d6a0c91f7"
	webhookSecret = "webhook-SECRET-9d1c5e3b7a20"
)

// plantedSecrets are the values searched for, including the base64 form
// the pull secret takes inside a Docker config.
func plantedSecrets() []string {
	return []string{pullPassword, apiKey, webhookSecret,
		base64.StdEncoding.EncodeToString([]byte(pullUser + ":" + pullPassword))}
}

// securedController runs the binary with trigger keys and a webhook secret
// from files, as the chart mounts them.
func (f *fixture) securedController(extra ...string) *proc {
	dir := f.T.TempDir()
	keys := filepath.Join(dir, "keys")
	e2eenv.Must(f.T, os.MkdirAll(keys, 0o700))
	e2eenv.Must(f.T, os.WriteFile(filepath.Join(keys, "ci"), []byte(apiKey+"\n"), 0o600))
	hook := filepath.Join(dir, "webhook-secret")
	e2eenv.Must(f.T, os.WriteFile(hook, []byte(webhookSecret+"\n"), 0o600))
	p := f.startController("secured", append([]string{"--trigger-keys-dir", keys, "--webhook-secret-file", hook}, extra...)...)
	p.waitReady(f)
	return p
}

// send POSTs body with an optional Authorization header and returns the
// status and response body.
func send(t *testing.T, url, auth string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	e2eenv.Must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(data)
}

type authCase struct {
	name, path, auth string
	body             func() io.Reader
	want             int
}

func jsonBody(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }

// oversized is a syntactically valid JSON body well over the 64 KiB limit.
func oversized() io.Reader {
	return strings.NewReader(`{"namespace":"x","name":"` + strings.Repeat("a", 1<<20) + `"}`)
}

func authCases(ns, app string) []authCase {
	trigger := jsonBody(fmt.Sprintf(`{"namespace":%q,"name":%q}`, ns, app))
	hub := jsonBody(`{"push_data":{"tag":"env-prod"},"repository":{"repo_name":"team/none"}}`)
	return []authCase{
		{"trigger: no key", "/v1/trigger", "", trigger, http.StatusUnauthorized},
		{"trigger: wrong key", "/v1/trigger", "Bearer wrong-key-0123456789", trigger, http.StatusUnauthorized},
		{"trigger: prefix of the key", "/v1/trigger", "Bearer " + apiKey[:len(apiKey)-1], trigger, http.StatusUnauthorized},
		{"trigger: key with a suffix", "/v1/trigger", "Bearer " + apiKey + "x", trigger, http.StatusUnauthorized},
		{"trigger: key as Basic", "/v1/trigger", "Basic " + apiKey, trigger, http.StatusUnauthorized},
		{"trigger: key in the URL", "/v1/trigger?token=" + apiKey, "", trigger, http.StatusUnauthorized},
		{"trigger: webhook secret as key", "/v1/trigger", "Bearer " + webhookSecret, trigger, http.StatusUnauthorized},
		{"trigger: right key", "/v1/trigger", "Bearer " + apiKey, trigger, http.StatusAccepted},
		{"trigger: body over the limit", "/v1/trigger", "Bearer " + apiKey, oversized, http.StatusRequestEntityTooLarge},
		{"trigger: big body without a key", "/v1/trigger", "", oversized, http.StatusUnauthorized},
		{"webhook: no secret", "/v1/webhooks/dockerhub", "", hub, http.StatusUnauthorized},
		{"webhook: wrong secret", "/v1/webhooks/distribution", "Bearer wrong-secret-0123456789", hub, http.StatusUnauthorized},
		{"webhook: prefix of the secret", "/v1/webhooks/dockerhub?token=" + webhookSecret[:8], "", hub, http.StatusUnauthorized},
		{"webhook: secret with a suffix", "/v1/webhooks/ecr", "Bearer " + webhookSecret + "0", hub, http.StatusUnauthorized},
		{"webhook: API key as secret", "/v1/webhooks/dockerhub", "Bearer " + apiKey, hub, http.StatusUnauthorized},
		{"webhook: right secret", "/v1/webhooks/dockerhub", "Bearer " + webhookSecret, hub, http.StatusAccepted},
		{"webhook: right secret in URL", "/v1/webhooks/dockerhub?token=" + webhookSecret, "", hub, http.StatusAccepted},
		{"webhook: body over the limit", "/v1/webhooks/dockerhub", "Bearer " + webhookSecret, oversized, http.StatusRequestEntityTooLarge},
	}
}

// TestTriggerAndWebhookAuth sends every kind of wrong credential to the
// real binary's trigger and webhook endpoints, and bodies over the size
// limit. Neither endpoint signs with timestamps (shared secrets only), so
// there is no replay window to test; a replayed request only schedules a
// poll, and the registry stays the source of truth.
func TestTriggerAndWebhookAuth(t *testing.T) {
	f := newFixture(t, "auth")
	f.createCV()
	p := f.securedController()
	for _, tc := range authCases(f.NS, f.app) {
		status, body := send(t, p.url()+tc.path, tc.auth, tc.body())
		if status != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, status, tc.want, strings.TrimSpace(body))
		}
	}
}

// TestPlantedSecretsNeverLeak plants a registry password (pull secret), an
// API key and a webhook secret, uses all three (a private-registry rollout,
// a failing one without credentials, triggers and webhooks with right and
// wrong credentials), then searches everything captured for them.
func TestPlantedSecretsNeverLeak(t *testing.T) {
	f := newFixture(t, "leaks")
	private := newAuthProxy(t, f.reg.Host, pullUser, pullPassword)
	f.createPullSecret("registry-creds", private.Host)
	privateRepo := private.Host + "/team/leaks"
	f.setImage(privateRepo + ":old")
	f.CreateCV(gen.NewCV(f.NS, "leaks", privateRepo, func(s *cvv1.ContainerVersionSpec) {
		s.ImagePullSecrets = []cvv1.LocalObjectReference{{Name: "registry-creds"}}
	}))
	// The same private repository without credentials: a registry error
	// whose message and Event must not carry anything secret either.
	f.CreateCV(gen.NewCV(f.NS, "nocreds", privateRepo))
	p := f.securedController("--insecure-registry", private.Host)
	d1 := f.push("v1")
	f.WaitStatus("leaks", cvv1.StatusSuccess, d1, 60*time.Second)
	for _, tc := range authCases(f.NS, f.app) {
		send(t, p.url()+tc.path, tc.auth, tc.body())
	}
	f.waitDegraded("nocreds", "RegistryError")
	f.assertNoSecrets(p)
}

// setImage changes the app's image before any controller runs.
func (f *fixture) setImage(image string) {
	f.T.Helper()
	// The Deployment controller writes status meanwhile: retry conflicts.
	e2eenv.Must(f.T, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := f.Kube.AppsV1().Deployments(f.NS).Get(f.Ctx, f.app, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		d, err = f.Kube.AppsV1().Deployments(f.NS).Update(f.Ctx, d, metav1.UpdateOptions{})
		if err == nil {
			f.gen0 = d.Generation
		}
		return err
	}))
}

// createPullSecret creates a dockerconfigjson Secret for host.
func (f *fixture) createPullSecret(name, host string) {
	auth := base64.StdEncoding.EncodeToString([]byte(pullUser + ":" + pullPassword))
	config, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"username": pullUser, "password": pullPassword, "auth": auth}}})
	e2eenv.Must(f.T, err)
	_, err = f.Kube.CoreV1().Secrets(f.NS).Create(f.Ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: config},
	}, metav1.CreateOptions{})
	e2eenv.Must(f.T, err)
}

// assertNoSecrets searches the controller's output, the namespace's Events,
// CVs (status included), ConfigMaps (history) and the HTTP endpoints.
func (f *fixture) assertNoSecrets(p *proc) {
	f.T.Helper()
	captured := map[string][]byte{"controller log": []byte(p.log())}
	events, err := f.Kube.CoreV1().Events(f.NS).List(f.Ctx, metav1.ListOptions{})
	e2eenv.Must(f.T, err)
	captured["Events"] = mustJSON(f.T, events)
	cvs, err := f.CVClient.CvmanagerV1alpha1().ContainerVersions(f.NS).List(f.Ctx, metav1.ListOptions{})
	e2eenv.Must(f.T, err)
	captured["ContainerVersions"] = mustJSON(f.T, cvs)
	cms, err := f.Kube.CoreV1().ConfigMaps(f.NS).List(f.Ctx, metav1.ListOptions{})
	e2eenv.Must(f.T, err)
	captured["ConfigMaps"] = mustJSON(f.T, cms)
	for _, path := range []string{"/v1/cv/workloads", "/v1/cv/workloads?format=html", "/v1/cv/workloads/leaks?namespace=" + f.NS, "/metrics"} {
		captured["GET "+path] = []byte(get(f.T, p.url()+path))
	}
	if len(cms.Items) == 0 || len(events.Items) == 0 || len(captured["controller log"]) == 0 {
		f.T.Fatalf("nothing captured to search (%d ConfigMaps, %d Events, %d bytes of log)",
			len(cms.Items), len(events.Items), len(captured["controller log"]))
	}
	for where, data := range captured {
		if found := containsAny(data, plantedSecrets()...); len(found) > 0 {
			f.T.Errorf("%s contains planted secrets %q", where, found)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	data, err := json.Marshal(v)
	e2eenv.Must(t, err)
	return data
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	e2eenv.Must(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}
