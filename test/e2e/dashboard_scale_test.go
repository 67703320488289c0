package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/test/benchresults"
)

// Hostile strings that would set window.__xss if any path — the server's
// template or the script that renders the JSON rows — parsed them as markup.
const (
	xssName    = `svc"><img src=x onerror=window.__xss=1>`
	xssMessage = `</td><script>window.__xss=2</script><svg onload=window.__xss=3>`
)

// manyRows is a Source of n CVs, each selecting one Deployment: every
// tenth failed (one with hostile strings), every seventh in progress.
type manyRows struct {
	cvs       []*cvv1.ContainerVersion
	workloads map[string]workload.Workload
}

func newManyRows(n int) *manyRows {
	m := &manyRows{workloads: map[string]workload.Workload{}}
	now := metav1.Now()
	for i := range n {
		name, ns := fmt.Sprintf("svc-%04d", i), fmt.Sprintf("team-%d", i%5)
		if i == 3 {
			name = xssName
		}
		cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cvv1.ContainerVersionSpec{Tag: "env-prod", Container: cvv1.ContainerSpec{Name: "app"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint(i)}}},
			Status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, CurrVersion: "v1", CurrStatusTime: &now}}
		switch {
		case i%10 == 3:
			cv.Status.CurrStatus = cvv1.StatusFailed
			cv.Status.Conditions = []metav1.Condition{{Type: cvv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "RolloutFailed", Message: xssMessage}}
		case i%7 == 0:
			cv.Status.CurrStatus = cvv1.StatusProgressing
			cv.Status.Rollout = &cvv1.RolloutStatus{Step: "Migrated", StartTime: now}
		}
		m.cvs = append(m.cvs, cv)
		m.workloads[fmt.Sprint(i)] = workload.Workload{Kind: workload.Deployment, Object: &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: "reg/" + name + ":v1"}}}}}}}
	}
	return m
}

func (m *manyRows) ContainerVersions(namespace string) ([]*cvv1.ContainerVersion, error) {
	var out []*cvv1.ContainerVersion
	for _, cv := range m.cvs {
		if namespace == "" || cv.Namespace == namespace {
			out = append(out, cv)
		}
	}
	return out, nil
}

func (m *manyRows) Workloads(_ string, selector labels.Selector) ([]workload.Workload, error) {
	app, _ := selector.RequiresExactMatch("app")
	return []workload.Workload{m.workloads[app]}, nil
}

func (m *manyRows) Get(namespace, name string) (*cvv1.ContainerVersion, error) {
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "containerversions"}, name)
}

// timings are what the browser measured on the page with 1,000 rows, in
// ms: from navigation start to the HTML received (Response), parsed and
// laid out (DOMReady), the JSON rows received (JSON) and the script's
// render done (Rendered); then a text filter and a state filter, each
// with the rows it left.
type timings struct {
	Response, DOMReady, JSON, Rendered float64
	Text, State                        float64
	TextRows, StateRows                int
}

func (t timings) String() string {
	return fmt.Sprintf("HTML %.0f ms, parsed %.0f ms, JSON %.0f ms, rendered %.0f ms after navigation start; text filter %.0f ms (%d rows); state filter %.0f ms (%d rows)",
		t.Response, t.DOMReady, t.JSON, t.Rendered, t.Text, t.TextRows, t.State, t.StateRows)
}

// renderTimes loads the page and measures it in the browser.
func renderTimes(ctx context.Context, url string) (timings, error) {
	var tm timings
	var textRun, stateRun []float64
	var phases map[string]float64
	measure := `(q => { const t0 = performance.now(); q(); document.body.offsetHeight;
		return [performance.now() - t0, document.querySelectorAll("#workloads tbody tr").length]; })`
	err := chromedp.Run(ctx, chromedp.Navigate(url), waitRefreshed(1),
		chromedp.Evaluate(`(n => ({resp: n.responseEnd, dom: n.domContentLoadedEventEnd,
			json: performance.getEntriesByType("resource").filter(r => r.name.includes("format=json")).pop().responseEnd,
			rendered: performance.getEntriesByName("cv-rows-rendered").pop().startTime}))(performance.getEntriesByType("navigation")[0])`, &phases),
		chromedp.Evaluate(measure+`(() => { const q = document.getElementById("q"); q.value = "svc-01"; q.dispatchEvent(new Event("input")); })`, &textRun),
		chromedp.Evaluate(measure+`(() => { const q = document.getElementById("q"); q.value = ""; q.dispatchEvent(new Event("input"));
			document.querySelector("#counts a[data-state=Failed]").click(); })`, &stateRun))
	if err != nil || len(textRun) != 2 || len(stateRun) != 2 {
		return tm, fmt.Errorf("measuring: %v (%v %v)", err, textRun, stateRun)
	}
	tm = timings{Response: phases["resp"], DOMReady: phases["dom"], JSON: phases["json"], Rendered: phases["rendered"],
		Text: textRun[0], TextRows: int(textRun[1]), State: stateRun[0], StateRows: int(stateRun[1])}
	return tm, nil
}

func serveManyRows(t testing.TB, n int) string {
	src := newManyRows(n)
	mux := http.NewServeMux()
	dashboard.NewHandler(src, history.NewStore(fake.NewClientset()), src).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/cv/workloads?format=html"
}

// TestDashboard1000RowsInChromium: 1,000 rows render and filter in the
// browser within a generous bound (the 1 s budget is in the benchmark), and
// hostile names and messages stay text on both rendering paths.
func TestDashboard1000RowsInChromium(t *testing.T) {
	url := serveManyRows(t, 1000)
	b := browser(t)
	tm, err := renderTimes(b, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000 rows: %s", tm)
	// svc-01xx are 100 rows; Failed rows are every tenth, i%10 == 3.
	if tm.TextRows != 100 || tm.StateRows != 100 {
		t.Errorf("filters showed %d and %d rows, want 100 and 100", tm.TextRows, tm.StateRows)
	}
	const bound = 30000 // ms; a generous bound for a shared machine at load 30, not the budget
	if tm.Rendered > bound || tm.Text > bound || tm.State > bound {
		t.Errorf("too slow: %s", tm)
	}
	assertLastRowDrawnWhenScrolled(t, b)
	for _, page := range []string{url, url + "&state=Failed&reload=true"} {
		assertNoXSS(t, b, page)
	}
}

// assertLastRowDrawnWhenScrolled: rows past the first screenfuls skip
// layout until they come into view (content-visibility); scrolled to, the
// last row is drawn with its text.
func assertLastRowDrawnWhenScrolled(t *testing.T, b context.Context) {
	t.Helper()
	var drawn struct {
		Visible bool
		Height  float64
		Text    string
	}
	run(t, b, "scroll to the last row", chromedp.Evaluate(`(async () => {
		const tr = document.querySelector("#workloads tbody tr:last-child");
		tr.scrollIntoView();
		await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
		return {visible: tr.checkVisibility({contentVisibilityAuto: true}), height: tr.getBoundingClientRect().height, text: tr.innerText};
	})()`, &drawn, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if !drawn.Visible || drawn.Height < 20 || !strings.Contains(drawn.Text, "svc-") {
		t.Errorf("last row after scrolling: visible %v, height %.0f px, text %q", drawn.Visible, drawn.Height, drawn.Text)
	}
}

// assertNoXSS loads the page, waits for the script's render and checks no
// hostile script ran and the strings show as text.
func assertNoXSS(t *testing.T, b context.Context, url string) {
	t.Helper()
	var xss any
	var literal bool
	run(t, b, "hostile page", chromedp.Navigate(url), waitRefreshed(1),
		chromedp.Evaluate(`window.__xss === undefined ? null : window.__xss`, &xss),
		chromedp.Evaluate(`document.body.textContent.includes(`+jsString(xssName)+`) && document.body.textContent.includes(`+jsString(xssMessage)+`)`, &literal))
	if xss != nil {
		t.Errorf("%s: hostile script ran: window.__xss = %v", url, xss)
	}
	if !literal {
		t.Errorf("%s: hostile strings not shown as text", url)
	}
}

func jsString(s string) string {
	return fmt.Sprintf("%q", s)
}

// BenchmarkDashboard1000RowsInChromium holds the budget: 1,000 rows render
// (navigation start to rendered) and filter in under 1 s in headless
// Chromium. It reports the slowest of the timed loads as ms metrics. One
// load before the clock starts spawns Chromium's renderer and fills its
// cache with the page's script and stylesheet, as for a user whose
// browser is already running; its times are logged, not budgeted.
func BenchmarkDashboard1000RowsInChromium(b *testing.B) {
	url := serveManyRows(b, 1000)
	ctx := browser(b)
	cold, err := renderTimes(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("first load in a new browser: %s", cold)
	res := benchresults.Dashboard{Rows: 1000, ColdRenderMs: cold.Rendered, BudgetMs: float64(time.Second / time.Millisecond)}
	for b.Loop() {
		tm, err := renderTimes(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		res.Loads++
		res.RenderMs, res.TextFilterMs, res.StateFilterMs = max(res.RenderMs, tm.Rendered), max(res.TextFilterMs, tm.Text), max(res.StateFilterMs, tm.State)
	}
	b.ReportMetric(res.RenderMs, "render-ms")
	b.ReportMetric(res.TextFilterMs, "text-filter-ms")
	b.ReportMetric(res.StateFilterMs, "state-filter-ms")
	// The figures are kept in bench/results, so docs quote a file (with
	// b.Loop the function runs once per -count, holding every timed load).
	if res.Loads > 0 {
		dir, err := benchresults.Dir()
		if err == nil {
			var path string
			path, err = benchresults.WriteDashboard(dir, res)
			b.Logf("results written to %s", path)
		}
		if err != nil {
			b.Errorf("writing the results: %v", err)
		}
	}
	if !res.Met() {
		b.Errorf("over the 1 s budget: render %.0f ms, text filter %.0f ms, state filter %.0f ms", res.RenderMs, res.TextFilterMs, res.StateFilterMs)
	}
}
