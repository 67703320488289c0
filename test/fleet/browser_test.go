package fleet

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/test/browsertest"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// hostile is what a compromised peer might send as names and versions.
const hostile = `<img src=x onerror="window.__xss=1">`

// browser starts headless Chromium (test/browsertest).
func browser(t *testing.T) context.Context {
	return browsertest.Start(t, 1200, 600, 90*time.Second)
}

// TestFleetPageInChromium serves staging's dashboard with three peers:
// prod's real dashboard (its own control plane and controller), a peer
// that answered once with hostile names and then fails (stale), and one
// that never answers (unreachable). Chromium, with and without
// JavaScript, shows the matrix, marks the stale and unreachable peers,
// and runs none of the hostile markup. Screenshots go to test/artifacts.
func TestFleetPageInChromium(t *testing.T) {
	e := e2eenv.New(t)
	staging, prod := newCluster("staging", controlplane.Shared()), prodCluster(t)
	_, err := prod.kube.CoreV1().Namespaces().Create(e.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.NS}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	reg := e2eenv.NewRegistry(t)
	d1 := reg.MustPush(t, "team/shop", "v1", "env-staging", "env-prod")
	stagingCtrl := startController(t, staging, e.NS, reg.Resolver(t))
	prodCtrl := startController(t, prod, e.NS, reg.Resolver(t))
	deployWeb(t, staging, e.NS, reg.Repo("team/shop"), "env-staging")
	deployWeb(t, prod, e.NS, reg.Repo("team/shop"), "env-prod")
	waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d1)
	d2 := reg.MustPush(t, "team/shop", "v2", "env-staging")
	waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d2)

	prodMux := http.NewServeMux()
	dashboard.ForController(prodCtrl.CVLister(), prodCtrl.WorkloadListers(), prod.kube).Register(prodMux)
	prodSrv := httptest.NewServer(prodMux)
	defer prodSrv.Close()
	var failing atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode([]dashboard.Row{{Namespace: e.NS, Name: "web", CV: "web", Version: "v0", Status: "Success"},
			{Namespace: hostile, Name: hostile, CV: hostile, Version: hostile, Status: "Success", State: hostile}})
	}))
	defer flaky.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	peers, err := dashboard.NewPeers([]dashboard.Peer{{Name: "prod", URL: prodSrv.URL}, {Name: "dr-" + hostile, URL: flaky.URL},
		{Name: "gone", URL: gone.URL}}, nil)
	e2eenv.Must(t, err)
	peers.Refresh(e.Ctx)
	failing.Store(true)
	peers.Refresh(e.Ctx)

	dash := dashboard.ForController(stagingCtrl.CVLister(), stagingCtrl.WorkloadListers(), staging.kube)
	dash.Fleet, dash.FleetName = peers, "staging"
	mux := http.NewServeMux()
	dash.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, js := range []bool{true, false} {
		b := browser(t)
		var cells []string
		var staleClass, goneClass, hostileText string
		var xss bool
		var shot []byte
		actions := []chromedp.Action{}
		if !js {
			actions = append(actions, emulation.SetScriptExecutionDisabled(true))
		}
		actions = append(actions, chromedp.Navigate(srv.URL+dashboard.FleetPath+"?format=html"),
			chromedp.WaitVisible("#fleet", chromedp.ByQuery),
			chromedp.Evaluate(`Array.from(document.querySelectorAll('#fleet tbody tr[data-name="web"] td')).map(td => td.innerText.trim())`, &cells),
			chromedp.Evaluate(`document.querySelectorAll('#clusters li')[2].className`, &staleClass),
			chromedp.Evaluate(`document.querySelector('#clusters li[data-cluster="gone"]').className`, &goneClass),
			chromedp.Evaluate(`document.querySelectorAll('#fleet tbody tr th')[0].innerText`, &hostileText),
			chromedp.Evaluate(`window.__xss === 1 || document.querySelector('#fleet img') !== null`, &xss),
			chromedp.FullScreenshot(&shot, 100))
		if err := chromedp.Run(b, actions...); err != nil {
			t.Fatalf("browser (js %v): %v", js, err)
		}
		t.Logf("js %v: web row %q", js, cells)
		if len(cells) != 4 || !strings.HasPrefix(cells[0], "v2 Success") || !strings.HasPrefix(cells[1], "v1 Success") ||
			!strings.Contains(cells[2], "(stale)") || cells[3] != "unreachable" {
			t.Errorf("web row across staging, prod, dr, gone: %q", cells)
		}
		if staleClass != "cluster-stale" || goneClass != "cluster-unreachable" {
			t.Errorf("cluster marks: dr %q, gone %q", staleClass, goneClass)
		}
		if xss {
			t.Error("hostile peer markup became an element or ran")
		}
		if !strings.Contains(hostileText, "<img") {
			t.Errorf("hostile name not shown as text: %q", hostileText)
		}
		name := "fleet.png"
		if !js {
			name = "fleet-nojs.png"
		}
		saveArtifact(t, name, shot)
	}
}

// saveArtifact keeps a file under test/artifacts for people to look at.
func saveArtifact(t *testing.T, name string, data []byte) {
	dir := filepath.Join(kubetest.RepoRoot(), "test", "artifacts")
	e2eenv.Must(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name)
	e2eenv.Must(t, os.WriteFile(path, data, 0o644))
	t.Logf("screenshot: %s", path)
}
