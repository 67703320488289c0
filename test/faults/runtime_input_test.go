package faults

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// wrongAtRunTime is a CV that passes admission but cannot work in this
// cluster. The controller must say so precisely and change nothing.
type wrongAtRunTime struct {
	name string
	// image the case's Deployment runs; empty means the CV's repo.
	image string
	edit  func(*cvv1.ContainerVersionSpec, *runtimeEnv)
	// reason and message parts expected on the Degraded condition.
	reason   string
	messages []string
}

type runtimeEnv struct {
	ns          string
	privateRepo string
}

var wrongAtRunTimeCases = []wrongAtRunTime{{
	name: "no-match",
	edit: func(s *cvv1.ContainerVersionSpec, _ *runtimeEnv) {
		s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nothing-has-this"}}
	},
	reason:   "NoMatchingWorkloads",
	messages: []string{"no Deployment, StatefulSet, DaemonSet or CronJob", "app=nothing-has-this"},
}, {
	name:     "no-container",
	edit:     func(s *cvv1.ContainerVersionSpec, _ *runtimeEnv) { s.Container.Name = "sidecar" },
	reason:   "ContainerNotFound",
	messages: []string{`container "sidecar" not found in Deployment/no-container`, "nothing was changed"},
}, {
	// The workload runs another repository than the CV follows: writing
	// the CV's image would silently replace a different application.
	name:     "repo-mismatch",
	image:    "registry.invalid/other/app:1.0",
	reason:   "RepoMismatch",
	messages: []string{"registry.invalid/other/app", "nothing was changed"},
}, {
	name: "private-no-creds",
	edit: func(s *cvv1.ContainerVersionSpec, env *runtimeEnv) { s.ImageRepo = env.privateRepo },
	// Registry errors are reported as RegistryError with the cause.
	reason:   "RegistryError",
	messages: []string{"cannot resolve", ":env-prod", "401"},
}}

// TestRunTimeMisconfigurationIsReportedAndNothingPatched: each CV below is
// valid to the apiserver but wrong for the cluster. Each gets Degraded=True
// with a reason and a message naming what is wrong, a Misconfigured or
// RegistryError Event, and its workload is left untouched.
func TestRunTimeMisconfigurationIsReportedAndNothingPatched(t *testing.T) {
	f := newFixture(t, "bystander")
	private := newAuthProxy(t, f.reg.Host, "ci", "s3cret-pull-password")
	env := &runtimeEnv{ns: f.NS, privateRepo: private.Host + "/team/private"}
	f.reg.MustPush(t, "team/private", "v1", "env-prod")
	gens := map[string]int64{}
	for _, tc := range wrongAtRunTimeCases {
		gens[tc.name] = f.createCase(tc, env)
	}
	f.startController("controller", "--insecure-registry", private.Host)
	for _, tc := range wrongAtRunTimeCases {
		t.Run(tc.name, func(t *testing.T) {
			cv := f.with(t).waitDegraded(tc.name, tc.reason)
			msg := degradedMessage(cv)
			for _, part := range tc.messages {
				if !strings.Contains(msg, part) {
					t.Errorf("Degraded message %q does not contain %q", msg, part)
				}
			}
			if cv.Status.Rollout != nil || cv.Status.CurrStatus == cvv1.StatusSuccess {
				t.Errorf("a rollout went ahead: %+v", cv.Status)
			}
			if got := f.with(t).generationOf(tc.name); got != gens[tc.name] {
				t.Errorf("workload %s was patched (%d -> %d)", tc.name, gens[tc.name], got)
			}
		})
	}
}

// createCase creates the case's Deployment and CV, returning the
// Deployment's generation before the controller runs.
func (f *fixture) createCase(tc wrongAtRunTime, env *runtimeEnv) int64 {
	image := tc.image
	if image == "" {
		image = f.repo + ":old"
	}
	_, err := f.Kube.AppsV1().Deployments(f.NS).Create(f.Ctx, gen.NewDeployment(f.NS, tc.name, tc.name, image, 1), metav1.CreateOptions{})
	e2eenv.Must(f.T, err)
	f.reg.MustPush(f.T, "team/"+tc.name, "v1", "env-prod")
	f.CreateCV(gen.NewCV(f.NS, tc.name, f.reg.Repo("team/"+tc.name), func(s *cvv1.ContainerVersionSpec) {
		if tc.edit != nil {
			tc.edit(s, env)
		}
	}))
	return f.generationOf(tc.name)
}

// with is the fixture seen from subtest t, so a failed wait ends only t.
func (f *fixture) with(t *testing.T) *fixture {
	env := *f.Env
	env.T = t
	g := *f
	g.Env = &env
	return &g
}

func (f *fixture) generationOf(name string) int64 {
	d, err := f.Kube.AppsV1().Deployments(f.NS).Get(f.Ctx, name, metav1.GetOptions{})
	e2eenv.Must(f.T, err)
	return d.Generation
}

func (f *fixture) waitDegraded(name, reason string) *cvv1.ContainerVersion {
	f.T.Helper()
	var cv *cvv1.ContainerVersion
	f.Eventually(30*time.Second, name+" Degraded with "+reason, func() (bool, error) {
		cv = f.GetCV(name)
		return e2eenv.ConditionIs(cv, cvv1.ConditionDegraded, reason), fmt.Errorf("conditions %+v, rollout %+v", cv.Status.Conditions, cv.Status.Rollout)
	})
	return cv
}

func degradedMessage(cv *cvv1.ContainerVersion) string {
	for _, c := range cv.Status.Conditions {
		if c.Type == cvv1.ConditionDegraded {
			return c.Message
		}
	}
	return ""
}

// newAuthProxy serves the registry at registryHost behind HTTP basic
// auth: a private registry, for the missing- and planted-credential tests.
func newAuthProxy(t *testing.T, registryHost, user, password string) *url.URL {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: registryHost}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	e2eenv.Must(t, err)
	return u
}
