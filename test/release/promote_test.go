package release

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// hook is a webhook receiver and the controller's notifier sending to it.
type hook struct {
	e      *e2eenv.Env
	url    string
	mu     sync.Mutex
	events []string
}

func startHook(e *e2eenv.Env) *hook {
	h := &hook{e: e}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			h.mu.Lock()
			h.events = append(h.events, ev.Kind+":"+ev.Version+" from "+ev.From)
			h.mu.Unlock()
		}
	}))
	e.T.Cleanup(srv.Close)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "hook"}, Data: map[string][]byte{"url": []byte(srv.URL)}}
	_, err := e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, secret, metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
	return h
}

// withNotifier gives the controller a running notifier.
func (h *hook) withNotifier(o *controller.Options) {
	n := notify.New()
	n.Run(h.e.Ctx, 1)
	o.Notifier = n
}

// subscribe sends the CV's events of the given kinds to the hook.
func (h *hook) subscribe(kinds ...string) func(*cvv1.ContainerVersionSpec) {
	return func(s *cvv1.ContainerVersionSpec) {
		s.Notifications = []cvv1.NotificationSpec{{Name: "ops", Type: "Webhook", Events: kinds,
			URLSecretRef: cvv1.SecretKeyRef{Name: "hook", Key: "url"}}}
	}
}

func (h *hook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// envCV is the CV of service web in environment env: tag env-<env>,
// labelled with the service and the environment.
func envCV(e *e2eenv.Env, name, repo, env string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	cv := gen.NewCV(e.NS, name, repo, append([]func(*cvv1.ContainerVersionSpec){func(s *cvv1.ContainerVersionSpec) {
		s.Tag = "env-" + env
		s.TimeoutSeconds = 8
	}}, edit...)...)
	cv.Labels = map[string]string{cli.DefaultServiceLabel: "web", "env": env}
	return cv
}

func createDeployment(e *e2eenv.Env, name, image string) {
	e.T.Helper()
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, image, 1), metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
}

// registryDigest is where repo:tag points, read with the product's tagger.
func registryDigest(t *testing.T, repo, tag string) string {
	t.Helper()
	out, err := e2eenv.RunCLI("cr", "tags", "get", "--repo", repo, "--version", tag, "--insecure", "-o", "json")
	if err != nil {
		t.Fatalf("cr tags get %s:%s: %v\n%s", repo, tag, err, out)
	}
	var got struct{ Digest string }
	e2eenv.Must(t, json.Unmarshal([]byte(out), &got))
	return got.Digest
}

// TestPromote: a source that never succeeded is refused; a dry run changes
// nothing; a promotion by environment moves the target's tag to the
// source's last successful digest, the target rolls it out, and the
// target's history records the intent with the actor.
func TestPromote(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/web")
	kubeconfig := controlplane.Shared().KubeconfigPath()
	d1 := reg.MustPush(t, "team/web", "v1", "env-staging", "env-prod")
	bad := reg.MustPush(t, "team/web", "v0-unready", "env-canary") // kwok never readies images named *unready*
	for _, n := range []string{"web-staging", "web-prod", "web-canary"} {
		createDeployment(e, n, repo+":old")
	}
	hook := startHook(e)
	e.StartController(reg.Resolver(t), hook.withNotifier)
	e.CreateCV(envCV(e, "web-staging", repo, "staging"))
	e.CreateCV(envCV(e, "web-prod", repo, "prod", hook.subscribe(notify.Promoted)))
	e.CreateCV(envCV(e, "web-canary", repo, "canary"))
	e.WaitStatus("web-staging", cvv1.StatusSuccess, d1, 60*time.Second)
	e.WaitStatus("web-prod", cvv1.StatusSuccess, d1, 60*time.Second)
	e.WaitStatus("web-canary", cvv1.StatusFailed, bad, 60*time.Second)

	t.Run("source never succeeded: refused", func(t *testing.T) {
		out, err := e2eenv.RunCLI("promote", "--kubeconfig", kubeconfig, "--insecure", "--from", e.NS+"/web-canary", "--to", e.NS+"/web-prod")
		if err == nil || !strings.Contains(err.Error(), "no successful version") {
			t.Fatalf("promote from a failed source: %v\n%s", err, out)
		}
		if got := registryDigest(t, repo, "env-prod"); got != d1 {
			t.Errorf("env-prod moved to %s by a refused promotion", got)
		}
	})

	d2 := reg.MustPush(t, "team/web", "v2", "env-staging")
	e.WaitStatus("web-staging", cvv1.StatusSuccess, d2, 60*time.Second)
	byEnv := []string{"promote", "--kubeconfig", kubeconfig, "--insecure", "--service", "web", "--env-label", "env", "--from", "staging", "--to", "prod"}

	t.Run("dry run changes nothing", func(t *testing.T) {
		out, err := e2eenv.RunCLI(append(byEnv, "--dry-run")...)
		if err != nil || !strings.Contains(out, "would promote v2 ("+d2+")") {
			t.Fatalf("dry run: %v\n%s", err, out)
		}
		if got := registryDigest(t, repo, "env-prod"); got != d1 {
			t.Errorf("dry run moved env-prod to %s", got)
		}
		for _, r := range e.History("web-prod") {
			if r.Action == history.ActionPromote {
				t.Errorf("dry run recorded a promotion: %+v", r)
			}
		}
	})

	t.Run("promotion rolls the target out", func(t *testing.T) {
		out, err := e2eenv.RunCLI(append(byEnv, "--actor", "ci-bot")...)
		if err != nil {
			t.Fatalf("promote: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		if got := registryDigest(t, repo, "env-prod"); got != d2 {
			t.Fatalf("env-prod points to %s, want %s", got, d2)
		}
		e.WaitStatus("web-prod", cvv1.StatusSuccess, d2, 60*time.Second)
		if got := e.DeploymentImage("web-prod"); got != gen.Pinned(repo, "v2", d2) {
			t.Errorf("web-prod runs %s", got)
		}
		var promo *history.Record
		for _, r := range e.History("web-prod") {
			if r.Action == history.ActionPromote {
				promo = &r
			}
		}
		if promo == nil || promo.Actor != "ci-bot" || promo.From != e.NS+"/web-staging" || promo.ToDigest != d2 ||
			promo.FromDigest != d1 || promo.Trigger != history.TriggerPromote {
			t.Errorf("promotion record: %+v", promo)
		}
		if newest := e.History("web-prod")[0]; newest.Action != "" || newest.Trigger != history.TriggerPromote || newest.ToDigest != d2 {
			t.Errorf("the rollout the promotion started should be recorded with trigger promote: %+v", newest)
		}
		e.Eventually(10*time.Second, "the Promoted notification", func() (bool, error) { return len(hook.received()) > 0, nil })
		if got, want := strings.Join(hook.received(), ","), "Promoted:v2 from "+e.NS+"/web-staging"; got != want {
			t.Errorf("notifications = %s, want %s once", got, want)
		}
	})

	t.Run("status by service", func(t *testing.T) {
		out, err := e2eenv.RunCLI("status", "--kubeconfig", kubeconfig, "--service", "web", "--env-label", "env", "-o", "json")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var rows []cli.ServiceStatus
		e2eenv.Must(t, json.Unmarshal([]byte(out), &rows))
		got := map[string]string{}
		for _, r := range rows {
			if r.Namespace == e.NS {
				got[r.Environment] = r.Version + " " + r.Status
			}
		}
		want := map[string]string{"canary": "v0-unready Failed", "prod": "v2 Success", "staging": "v2 Success"}
		if len(got) != len(want) || got["canary"] != want["canary"] || got["prod"] != want["prod"] || got["staging"] != want["staging"] {
			t.Errorf("status rows = %v, want %v", got, want)
		}
		text, err := e2eenv.RunCLI("status", "--kubeconfig", kubeconfig, "--service", "web", "--env-label", "env")
		if err != nil || !strings.Contains(text, "ENVIRONMENT") {
			t.Errorf("status table: %v\n%s", err, text)
		}
		t.Logf("\n%s", text)
	})
}
