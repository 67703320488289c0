package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/browsertest"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// xssImage would set window.__xss if the page ever parsed it as markup.
const xssImage = `evil@<img/src=x/onerror=window.__xss=1>`

// browser starts headless Chromium (test/browsertest). Generous timeout:
// the states test waits for a 10 s refresh on a loaded machine.
func browser(t testing.TB) context.Context {
	return browsertest.Start(t, 1400, 700, 2*time.Minute)
}

// TestDashboardInChromium renders the workloads page in a real browser:
// rows ordered by status, sortable by a header click, hostile input shown
// as text (never run), and the history link works. A screenshot is saved
// to test/artifacts/dashboard.png.
func TestDashboardInChromium(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/ui")
	d1 := reg.MustPush(t, "team/ui", "v1", "env-prod")
	for _, name := range []string{"zeta", "alpha"} {
		_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		e.CreateCV(gen.NewCV(e.NS, name, repo))
	}
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "evil", "evil", xssImage, 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "evil", reg.Repo("team/absent")))

	ctrl := e2eenv.NewController(kubernetes.NewForConfigOrDie(e2eenv.ControllerConfig(t)), versioned.NewForConfigOrDie(e2eenv.ControllerConfig(t)),
		controller.Options{Namespace: e.NS, Resolver: reg.Resolver(t), Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	go func() { _ = ctrl.Run(ctx) }()
	mux := http.NewServeMux()
	dashboard.ForController(ctrl.CVLister(), ctrl.WorkloadListers(), ctrl.Kube).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e.WaitStatus("zeta", cvv1.StatusSuccess, d1, 60*time.Second)
	e.WaitStatus("alpha", cvv1.StatusSuccess, d1, 60*time.Second)

	b := browser(t)
	var names, sorted []string
	var xss bool
	var hostileText, title string
	var shot []byte
	url := srv.URL + "/v1/cv/workloads?format=html&namespace=" + e.NS
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(b, actions...); err != nil {
			t.Fatalf("browser step %q: %v", name, err)
		}
	}
	step("navigate", chromedp.Navigate(url))
	step("table", chromedp.WaitVisible("#workloads", chromedp.ByQuery))
	step("read", chromedp.Evaluate(`Array.from(document.querySelectorAll("#workloads tbody tr")).map(r => r.dataset.name)`, &names),
		chromedp.Evaluate(`window.__xss === 1`, &xss),
		chromedp.Evaluate(`document.querySelector("tr[data-name=evil] code[title]").title`, &hostileText))
	step("screenshot", chromedp.FullScreenshot(&shot, 100))
	step("sort", chromedp.Click(`th[data-key=name]`, chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#workloads tbody tr")).map(r => r.dataset.name)`, &sorted))
	// Success rows come before the never-deployed "evil" row, by name.
	if strings.Join(names, ",") != "alpha,zeta,evil" {
		t.Errorf("row order %v, want alpha,zeta,evil (Success first)", names)
	}
	if strings.Join(sorted, ",") != "alpha,evil,zeta" {
		t.Errorf("after sorting by workload: %v", sorted)
	}
	if xss {
		t.Error("hostile image markup was executed")
	}
	if !strings.Contains(hostileText, "<img/src=x/onerror=window.__xss=1>") {
		t.Errorf("hostile image not shown as text: %q", hostileText)
	}
	step("history", chromedp.Click(`tr[data-name=alpha] a.history`, chromedp.ByQuery),
		chromedp.WaitVisible("#history", chromedp.ByQuery),
		chromedp.Text("h1", &title, chromedp.ByQuery))
	if title != "History of workload "+e.NS+"/alpha" {
		t.Errorf("history page title %q", title)
	}
	saveArtifact(t, "dashboard.png", shot)
}

// saveArtifact keeps a file under test/artifacts for people to look at.
func saveArtifact(t *testing.T, name string, data []byte) {
	dir := filepath.Join(kubetest.RepoRoot(), "test", "artifacts")
	e2eenv.Must(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name)
	e2eenv.Must(t, os.WriteFile(path, data, 0o644))
	t.Logf("screenshot: %s", path)
}
