package dashboard

import (
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// threeStates serves a failed, a progressing and a healthy CV in "shop".
func threeStates(t *testing.T) string {
	t.Helper()
	now := time.Now()
	cv := func(name string, st cvv1.ContainerVersionStatus) *cvv1.ContainerVersion {
		return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:   cvv1.ContainerVersionSpec{Tag: "env-prod", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Container: cvv1.ContainerSpec{Name: "app"}},
			Status: st}
	}
	src := fakeSource{
		cvs: []*cvv1.ContainerVersion{
			cv("cart", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusFailed, Conditions: []metav1.Condition{
				{Type: cvv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "RolloutFailed", Message: "<b>crash</b> loop"}}}),
			cv("api", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusProgressing,
				Rollout: &cvv1.RolloutStatus{Step: "Migrated", StartTime: metav1.NewTime(now.Add(-90 * time.Second))}}),
			cv("web", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess}),
		},
		workloads: []workload.Workload{deployment("shop", "cart", "r/c:1"), deployment("shop", "api", "r/a:1"), deployment("shop", "web", "r/w:1")},
	}
	mux := http.NewServeMux()
	NewHandler(src, history.NewStore(fake.NewClientset()), src).Register(mux)
	return serve(t, mux)
}

// TestWorkloadsPageWithoutJavaScript: the server alone filters, counts and
// sorts from the query string, and shows step, reason and message.
func TestWorkloadsPageWithoutJavaScript(t *testing.T) {
	base := threeStates(t)
	for _, tc := range []struct {
		query    string
		rows     []string
		counts   map[string]string
		contains []string
	}{
		{"", []string{"api", "cart", "web"}, map[string]string{"Progressing": "1", "Failed": "1", "Success": "1", "Held": "0"},
			[]string{`step <b>Migrated</b> · running 1m3`, `<b>RolloutFailed</b>: &lt;b&gt;crash&lt;/b&gt; loop`}},
		{"&state=Failed", []string{"cart"}, map[string]string{"Failed": "1", "Success": "1"}, []string{`aria-current="true"`}},
		{"&q=we", []string{"web"}, map[string]string{"Success": "1", "Failed": "0"}, nil},
		{"&sort=name&order=desc", []string{"web", "cart", "api"}, nil, []string{`aria-sort="descending"`}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, page := fetch(t, base+"/v1/cv/workloads?format=html&namespace=shop"+tc.query)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, page)
			}
			if got := strings.Join(attrValues(t, page, "tr", "data-name"), ","); got != strings.Join(tc.rows, ",") {
				t.Errorf("rows %s, want %s", got, strings.Join(tc.rows, ","))
			}
			for state, n := range tc.counts {
				re := regexp.MustCompile(`data-state="` + state + `" href="[^"]*"[^>]*><b>(\d+)</b>`)
				if m := re.FindStringSubmatch(page); m == nil || m[1] != n {
					t.Errorf("count of %s = %v, want %s", state, m, n)
				}
			}
			for _, s := range tc.contains {
				if !strings.Contains(page, s) {
					t.Errorf("page lacks %s", s)
				}
			}
		})
	}
}

// TestPagesLoadNothingInline: the CSP forbids inline script and style and
// every page obeys it; the assets are served from our own paths.
func TestPagesLoadNothingInline(t *testing.T) {
	base := threeStates(t)
	resp, err := http.Get(base + "/v1/cv/workloads?format=html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	_, page := fetch(t, base+"/v1/cv/workloads?format=html")
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "style" || n.Data == "script" && attr(n, "src") == "") {
			t.Errorf("inline <%s> on the page", n.Data)
		}
		for _, a := range n.Attr {
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("inline %s attribute on <%s>", a.Key, n.Data)
			}
		}
	})
	for path, ctype := range map[string]string{"/ui/dashboard.js": "text/javascript", "/ui/dashboard.css": "text/css"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// TestThemeContrast: every --X-fg/--X-bg pair of both themes passes WCAG
// AA for normal text (4.5:1).
func TestThemeContrast(t *testing.T) {
	css, err := assetFS.ReadFile("assets/dashboard.css")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.SplitN(string(css), "@media (prefers-color-scheme: dark)", 2)
	if len(blocks) != 2 {
		t.Fatal("no dark theme")
	}
	re := regexp.MustCompile(`--([a-z]+)-(fg|bg):#([0-9a-f]{6})`)
	for i, block := range blocks {
		colours := map[string]map[string]string{}
		for _, m := range re.FindAllStringSubmatch(block, -1) {
			if colours[m[1]] == nil {
				colours[m[1]] = map[string]string{}
			}
			colours[m[1]][m[2]] = m[3]
		}
		if len(colours) < 8 {
			t.Fatalf("theme %d: only %d colour pairs", i, len(colours))
		}
		for name, pair := range colours {
			if r := contrast(pair["fg"], pair["bg"]); r < 4.5 {
				t.Errorf("theme %d: %s %s on %s has contrast %.2f < 4.5", i, name, pair["fg"], pair["bg"], r)
			}
		}
	}
}

// contrast is the WCAG 2 contrast ratio of two sRGB colours "rrggbb".
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(hex string) float64 {
	if len(hex) != 6 {
		return -1
	}
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
		s := float64(v) / 255
		if s <= 0.03928 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// attrValues lists the attribute of every element tag that has it.
func attrValues(t *testing.T, page, tag, key string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			if v := attr(n, key); v != "" {
				out = append(out, v)
			}
		}
	})
	return out
}

// serve starts a test server for mux and returns its URL.
func serve(t *testing.T, mux *http.ServeMux) string {
	t.Helper()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}
