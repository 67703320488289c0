package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestDashboardStatesInChromium drives the workloads page through three
// states of a real cluster — all healthy, one rollout failed, one rollout
// in progress — with a screenshot of each, and checks in the browser that
// the counts match the rows, that the filters change the rows and the URL,
// and that a refresh keeps the filters.
func TestDashboardStatesInChromium(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	for _, name := range []string{"alpha", "beta", "delta", "gamma"} {
		_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, "placeholder:v0", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		reg.MustPush(t, "team/"+name, "v1", "env-prod")
	}
	for _, name := range []string{"alpha", "beta"} {
		e.CreateCV(gen.NewCV(e.NS, name, reg.Repo("team/"+name)))
	}
	e.CreateCV(gen.NewCV(e.NS, "delta", reg.Repo("team/delta"), func(s *cvv1.ContainerVersionSpec) { s.TimeoutSeconds = 6 }))
	e.CreateCV(gen.NewCV(e.NS, "gamma", reg.Repo("team/gamma"), withMigration))
	url := startDashboard(t, e, reg)
	for _, name := range []string{"alpha", "beta", "delta", "gamma"} {
		e.Eventually(90*time.Second, name+" rolled out", func() (bool, error) {
			return e.GetCV(name).Status.CurrStatus == cvv1.StatusSuccess, nil
		})
	}
	b := browser(t)
	page := url + "/v1/cv/workloads?format=html&namespace=" + e.NS
	run(t, b, "healthy", chromedp.Navigate(page), waitRefreshed(1))
	assertCounts(t, b, map[string]int{"Success": 4})
	saveArtifact(t, "dashboard-healthy.png", screenshot(t, b))

	reg.MustPush(t, "team/delta", "v2-unready", "env-prod")
	e.Eventually(90*time.Second, "delta failed", func() (bool, error) { return e.GetCV("delta").Status.CurrStatus == cvv1.StatusFailed, nil })
	run(t, b, "failing", chromedp.Navigate(page), waitRefreshed(1))
	assertCounts(t, b, map[string]int{"Success": 3, "Failed": 1})
	failure := text(t, b, `tr[data-name=delta] .error`)
	if reason := e.GetCV("delta"); !strings.Contains(failure, degradedReason(reason)) {
		t.Errorf("failed row shows %q, not the reason %q", failure, degradedReason(reason))
	}
	saveArtifact(t, "dashboard-failing.png", screenshot(t, b))

	reg.MustPush(t, "team/gamma", "v2-unready", "env-prod")
	e.Eventually(90*time.Second, "gamma migrated and waiting", func() (bool, error) {
		st := e.GetCV("gamma").Status
		return st.CurrStatus == cvv1.StatusProgressing && st.Rollout != nil && st.Rollout.Step != "", nil
	})
	run(t, b, "progressing", chromedp.Navigate(page), waitRefreshed(1))
	assertCounts(t, b, map[string]int{"Success": 2, "Failed": 1, "Progressing": 1})
	if step := text(t, b, `tr[data-name=gamma] .step`); !strings.Contains(step, "step "+e.GetCV("gamma").Status.Rollout.Step) || !strings.Contains(step, "running ") {
		t.Errorf("progressing row shows %q", step)
	}
	saveArtifact(t, "dashboard-progressing.png", screenshot(t, b))
	assertFilters(t, b)
}

// withMigration gives the CV a migration Job, so its rollout has a step.
func withMigration(s *cvv1.ContainerVersionSpec) {
	s.TimeoutSeconds = 600
	s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{
		Name: "schema",
		Template: &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "app", Image: "replaced", Args: []string{"migrate"}}},
			}},
		}},
	}}}
}

// assertFilters: the state and text filters change the rows and the URL,
// the server renders the same view from that URL, and the JSON refresh
// keeps the filters.
func assertFilters(t *testing.T, b context.Context) {
	t.Helper()
	var search string
	run(t, b, "click the Failed count", chromedp.Click(`#counts a[data-state=Failed]`, chromedp.ByQuery),
		chromedp.Evaluate(`location.search`, &search))
	if got := rowNames(t, b); strings.Join(got, ",") != "delta" || !strings.Contains(search, "state=Failed") {
		t.Errorf("Failed filter: rows %v, URL %s", got, search)
	}
	run(t, b, "clear the state, type a search", chromedp.Click(`#counts a[data-state=Failed]`, chromedp.ByQuery),
		chromedp.SendKeys(`#q`, "gam", chromedp.ByQuery), chromedp.Evaluate(`location.search`, &search))
	if got := rowNames(t, b); strings.Join(got, ",") != "gamma" || !strings.Contains(search, "q=gam") || strings.Contains(search, "state=") {
		t.Errorf("text filter: rows %v, URL %s", got, search)
	}
	assertCounts(t, b, map[string]int{"Progressing": 1})
	run(t, b, "reload from the URL", chromedp.Reload(), chromedp.WaitReady(`#workloads`, chromedp.ByQuery))
	if got := rowNames(t, b); strings.Join(got, ",") != "gamma" {
		t.Errorf("after a reload of the bookmarked URL: rows %v", got)
	}
	run(t, b, "wait for a JSON refresh", waitRefreshed(2))
	var q string
	run(t, b, "read the search box", chromedp.Value(`#q`, &q, chromedp.ByQuery))
	if got := rowNames(t, b); strings.Join(got, ",") != "gamma" || q != "gam" {
		t.Errorf("after a refresh: rows %v, search box %q", got, q)
	}
}

// assertCounts: each state's count equals want (0 when absent) and the
// number of rows the page shows in that state.
func assertCounts(t *testing.T, b context.Context, want map[string]int) {
	t.Helper()
	var counts, rows map[string]int
	run(t, b, "read counts",
		chromedp.Evaluate(`Object.fromEntries(Array.from(document.querySelectorAll("#counts a")).map(a => [a.dataset.state, Number(a.querySelector("b").textContent)]))`, &counts),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#workloads tbody tr")).reduce((m, r) => (m[r.dataset.state] = (m[r.dataset.state] || 0) + 1, m), {})`, &rows))
	for _, s := range dashboard.States {
		if counts[s] != want[s] || rows[s] != counts[s] {
			t.Errorf("state %s: count %d, rows %d, want %d", s, counts[s], rows[s], want[s])
		}
	}
}

func rowNames(t *testing.T, b context.Context) []string {
	t.Helper()
	var names []string
	run(t, b, "read rows", chromedp.Evaluate(`Array.from(document.querySelectorAll("#workloads tbody tr")).map(r => r.dataset.name)`, &names))
	return names
}

func text(t *testing.T, b context.Context, sel string) string {
	t.Helper()
	var s string
	run(t, b, "read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

func screenshot(t *testing.T, b context.Context) []byte {
	t.Helper()
	var shot []byte
	run(t, b, "screenshot", chromedp.FullScreenshot(&shot, 100))
	return shot
}

// waitRefreshed waits until the page's script has loaded the JSON rows n
// times since the page loaded.
func waitRefreshed(n int) chromedp.Action {
	return chromedp.WaitVisible(fmt.Sprintf(`body[data-refreshed="%d"]`, n), chromedp.ByQuery)
}

func run(t *testing.T, b context.Context, step string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(b, actions...); err != nil {
		t.Fatalf("browser step %q: %v", step, err)
	}
}

func degradedReason(cv *cvv1.ContainerVersion) string {
	for _, c := range cv.Status.Conditions {
		if c.Type == cvv1.ConditionDegraded && c.Status == metav1.ConditionTrue {
			return c.Reason
		}
	}
	return "(no Degraded condition)"
}

// startDashboard runs a controller for the test's namespace and serves its
// dashboard; it returns the server's URL.
func startDashboard(t *testing.T, e *e2eenv.Env, reg *e2eenv.Registry) string {
	t.Helper()
	cfg := e2eenv.ControllerConfig(t)
	ctrl := e2eenv.NewController(kubernetes.NewForConfigOrDie(cfg), versioned.NewForConfigOrDie(cfg),
		controller.Options{Namespace: e.NS, Resolver: reg.Resolver(t), Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = ctrl.Run(ctx) }()
	mux := http.NewServeMux()
	dashboard.ForController(ctrl.CVLister(), ctrl.WorkloadListers(), ctrl.Kube).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return srv.URL
}
