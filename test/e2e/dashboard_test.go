package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// hostile is user input that must reach the page as text, never as markup.
const hostile = `<script>alert("x")</script>`

// TestDashboard: rows for CVs in two namespaces, scoped by ?namespace=,
// served from the controller's caches; HTML escapes user input; the history
// endpoint answers JSON and HTML with clear errors for bad requests.
func TestDashboard(t *testing.T) {
	e := e2eenv.New(t)
	other := controlplane.NewNamespace(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/dash")
	d1 := reg.MustPush(t, "team/dash", "v1", "env-prod")
	for _, ns := range []string{e.NS, other} {
		_, err := e.Kube.AppsV1().Deployments(ns).Create(e.Ctx, gen.NewDeployment(ns, "web", "web", repo+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		cv := gen.NewCV(ns, "web", repo)
		e.Stamp(cv)
		_, err = e.CVClient.CvmanagerV1alpha1().ContainerVersions(ns).Create(e.Ctx, cv, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	// A workload whose image is hostile text, under a CV whose repo does not
	// exist: nothing is patched, and the row shows the image and the error.
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "evil", "evil", "evil@"+hostile, 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "evil", reg.Repo("team/absent")))

	ctrl := e2eenv.NewController(kubernetes.NewForConfigOrDie(e2eenv.ControllerConfig(t)), versioned.NewForConfigOrDie(e2eenv.ControllerConfig(t)),
		controller.Options{Resolver: reg.Resolver(t), Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	go func() { _ = ctrl.Run(ctx) }()
	mux := http.NewServeMux()
	dashboard.ForController(ctrl.CVLister(), ctrl.WorkloadListers(), ctrl.Kube).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, ns := range []string{e.NS, other} {
		e.Eventually(60*time.Second, "web rolled out in "+ns, func() (bool, error) {
			cv, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(ns).Get(e.Ctx, "web", metav1.GetOptions{})
			return err == nil && cv.Status.CurrStatus == cvv1.StatusSuccess && cv.Status.CurrDigest == d1, err
		})
	}
	e.Eventually(30*time.Second, "evil reports its registry error", func() (bool, error) {
		cv := e.GetCV("evil")
		for _, c := range cv.Status.Conditions {
			if c.Type == cvv1.ConditionDegraded && c.Reason == controller.ReasonRegistryError {
				return true, nil
			}
		}
		return false, nil
	})

	var all []dashboard.Row
	getJSON(t, srv.URL+"/v1/cv/workloads", &all)
	if countNamespace(all, e.NS) != 2 || countNamespace(all, other) != 1 {
		t.Fatalf("rows per namespace wrong: %+v", all)
	}
	var scoped []dashboard.Row
	getJSON(t, srv.URL+"/v1/cv/workloads?namespace="+other, &scoped)
	if len(scoped) != 1 || scoped[0].Namespace != other || scoped[0].Digest != d1 || scoped[0].Version != "v1" || scoped[0].Status != cvv1.StatusSuccess {
		t.Errorf("scoped rows: %+v", scoped)
	}

	page := get(t, srv.URL+"/v1/cv/workloads?format=html", "", http.StatusOK)
	if strings.Contains(page, hostile) || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("hostile image not escaped in the page")
	}
	if !strings.Contains(page, `href="/v1/cv/workloads/web?namespace=`+e.NS+`&amp;format=html"`) {
		t.Errorf("page lacks the history link")
	}
	if html := get(t, srv.URL+"/v1/cv/workloads", "text/html", http.StatusOK); !strings.HasPrefix(html, "<!doctype html>") {
		t.Errorf("Accept: text/html not honoured")
	}

	var records []history.Record
	getJSON(t, srv.URL+"/v1/cv/workloads/web?namespace="+e.NS, &records)
	if len(records) != 1 || records[0].ToDigest != d1 {
		t.Errorf("history: %+v", records)
	}
	if h := get(t, srv.URL+"/v1/cv/workloads/web?namespace="+e.NS+"&format=html", "", http.StatusOK); !strings.Contains(h, "History of workload "+e.NS+"/web") {
		t.Errorf("workload history page: %.300s", h)
	}
	records = nil
	getJSON(t, srv.URL+"/v1/cv/containerversions/web/history?namespace="+e.NS, &records)
	if len(records) != 1 || records[0].ToDigest != d1 || records[0].Workload != "Deployment/web" {
		t.Errorf("CV history: %+v", records)
	}
	if h := get(t, srv.URL+"/v1/cv/containerversions/web/history?namespace="+e.NS+"&format=html", "", http.StatusOK); !strings.Contains(h, "History of ContainerVersion "+e.NS+"/web") {
		t.Errorf("CV history page: %.300s", h)
	}
	get(t, srv.URL+"/v1/cv/workloads/web", "", http.StatusBadRequest)
	get(t, srv.URL+"/v1/cv/workloads/nope?namespace="+e.NS, "", http.StatusNotFound)
	get(t, srv.URL+"/v1/cv/containerversions/nope/history?namespace="+e.NS, "", http.StatusNotFound)
}

func countNamespace(rows []dashboard.Row, ns string) int {
	n := 0
	for _, r := range rows {
		if r.Namespace == ns {
			n++
		}
	}
	return n
}

func get(t *testing.T, url, accept string, wantCode int) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	e2eenv.Must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, wantCode, body)
	}
	return string(body)
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	e2eenv.Must(t, json.Unmarshal([]byte(get(t, url, "", http.StatusOK)), into))
}
