package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

const provenanceDigest = "sha256:abababababababababababababababababababababababababababababababab"

// provenanceRows is a Source of two CVs: one whose image has ordinary
// provenance, one whose labels are hostile.
type provenanceRows struct{ cvs []*cvv1.ContainerVersion }

func newProvenanceRows() provenanceRows {
	cv := func(name string, p *cvv1.Provenance) *cvv1.ContainerVersion {
		return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: cvv1.ContainerVersionSpec{Tag: "env-prod", Container: cvv1.ContainerSpec{Name: "app"},
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
			Status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, CurrVersion: "v1", CurrDigest: provenanceDigest,
				SuccessDigest: provenanceDigest, Provenance: p}}
	}
	return provenanceRows{cvs: []*cvv1.ContainerVersion{
		cv("good", &cvv1.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://git.example/good",
			CILink: "https://ci.example/runs/1"}),
		cv("evil", &cvv1.Provenance{Revision: `<img src=x onerror=window.__xss=7>`, Source: `javascript:window.__xss=8`,
			CILink: `https://ci.example/"><script>window.__xss=9</script>`}),
	}}
}

func (p provenanceRows) ContainerVersions(string) ([]*cvv1.ContainerVersion, error) {
	return p.cvs, nil
}

func (p provenanceRows) Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error) {
	app, _ := selector.RequiresExactMatch("app")
	return []workload.Workload{{Kind: workload.Deployment, Object: &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "reg/" + app + ":v1@" + provenanceDigest}}}}}}}}, nil
}

func (p provenanceRows) Get(namespace, name string) (*cvv1.ContainerVersion, error) {
	for _, cv := range p.cvs {
		if cv.Name == name {
			return cv, nil
		}
	}
	return nil, nil
}

// renderedLine is a provenance line as the browser shows it.
type renderedLine struct {
	Text  string
	Links []string
	Title string
}

// readLines is the browser's view of every row's provenance line.
const readLines = `Object.fromEntries(Array.from(document.querySelectorAll("tr[data-name]")).map(tr => {
	const d = tr.querySelector(".provenance");
	return [tr.dataset.name, {Text: d.textContent, Links: Array.from(d.querySelectorAll("a")).map(a => a.getAttribute("href")),
		Title: (d.querySelector("code[title]") || {}).title || ""}];
}))`

// TestProvenanceLineInChromium: the server's rows and the script's (after
// a sort rebuilds them from the JSON rows) show the same provenance line:
// short revision, links only for http(s) URLs, hostile labels as text.
func TestProvenanceLineInChromium(t *testing.T) {
	src := newProvenanceRows()
	mux := http.NewServeMux()
	dashboard.NewHandler(src, history.NewStore(fake.NewClientset()), src).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := browser(t)
	var server, script map[string]renderedLine
	var rebuilt bool
	var xss any
	run(t, b, "server rows", chromedp.Navigate(srv.URL+"/v1/cv/workloads?format=html"), waitRefreshed(1),
		chromedp.Evaluate(`document.querySelector("tr[data-name=good]").dataset.mark = "server"`, nil),
		chromedp.Evaluate(readLines, &server))
	run(t, b, "script rows", chromedp.Click(`th[data-key=name]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("tr[data-name=good]").dataset.mark === undefined`, &rebuilt),
		chromedp.Evaluate(readLines, &script),
		chromedp.Evaluate(`window.__xss === undefined ? null : window.__xss`, &xss))
	const hostileCI = `https://ci.example/"><script>window.__xss=9</script>`
	want := func(ciHref string) map[string]renderedLine {
		return map[string]renderedLine{
			"good": {Text: "built from 0123456 · source · CI", Title: "0123456789abcdef0123456789abcdef01234567",
				Links: []string{"https://git.example/good", "https://ci.example/runs/1"}},
			"evil": {Text: "built from <img src=x onerror=window.__xss=7> · javascript:window.__xss=8 · CI",
				Title: "<img src=x onerror=window.__xss=7>", Links: []string{ciHref}},
		}
	}
	// html/template percent-encodes the URL; the script sets it as an
	// attribute value, where it is inert either way.
	if diff := cmp.Diff(want("https://ci.example/%22%3e%3cscript%3ewindow.__xss=9%3c/script%3e"), server); diff != "" {
		t.Errorf("server-rendered provenance lines (-want +got):\n%s", diff)
	}
	if !rebuilt {
		t.Error("the sort did not rebuild the rows: the script's rendering was not exercised")
	}
	if diff := cmp.Diff(want(hostileCI), script); diff != "" {
		t.Errorf("script-rendered provenance lines (-want +got):\n%s", diff)
	}
	if xss != nil {
		t.Errorf("hostile provenance ran: window.__xss = %v", xss)
	}
}
