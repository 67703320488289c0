package faults

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/browsertest"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// Hostile strings, each of which would set window.__xss if a page ever
// parsed it as markup or script. They break out of text, of double- and
// single-quoted attributes, and of a <td>.
var (
	hostileImage  = `evil@"><script>window.__xss=1</script><svg/onload=window.__xss=2>`
	hostileRecord = history.Record{
		ID: "hostile", Workload: `<img src=x onerror=window.__xss=3>`, Container: `'onmouseover='window.__xss=4`,
		FromVersion: `"><svg onload=window.__xss=5>`, ToVersion: `</code><script>window.__xss=6</script>`,
		ToDigest: `sha256:"><script>window.__xss=7</script>`, Strategy: "Simple", Outcome: `<b onclick=window.__xss=8>x</b>`,
		Reason: `</td></tr></table><script>window.__xss=9</script>`, Trigger: `javascript:window.__xss=10`,
	}
	hostileNamespace = `"><script>window.__xss=11</script>`
)

// TestDashboardShowsHostileInputAsTextInChromium renders pages fed with
// hostile strings — a workload image, every field of a history record, a
// reflected query parameter — in real headless Chromium, served by the real
// binary. No script runs, no event-handler attribute appears, and the
// strings are shown literally.
func TestDashboardShowsHostileInputAsTextInChromium(t *testing.T) {
	f := newFixture(t, "evil")
	f.setImage(hostileImage)
	f.CreateCV(gen.NewCV(f.NS, "evil", f.reg.Repo("team/absent"))) // never resolves: the image stays
	cv := f.GetCV("evil")
	e2eenv.Must(t, history.NewStore(f.Kube).Append(f.Ctx, cv, withTime(hostileRecord)))
	p := f.startController("dashboard")
	p.waitReady(f)
	f.waitDegraded("evil", "RegistryError")

	b := chromium(t)
	pages := []struct {
		name, path string
		literal    []string
	}{
		{"workloads", "/v1/cv/workloads?format=html&namespace=" + f.NS, []string{`"><script>window.__xss=1</script><svg/onload=window.__xss=2>`}},
		{"history", "/v1/cv/workloads/evil?format=html&namespace=" + f.NS,
			[]string{hostileRecord.Workload, hostileRecord.Reason, hostileRecord.ToVersion, hostileRecord.FromVersion, hostileRecord.Trigger}},
		{"CV history", "/v1/cv/containerversions/evil/history?format=html&namespace=" + f.NS,
			[]string{hostileRecord.Workload, hostileRecord.Reason, hostileRecord.ToVersion, hostileRecord.FromVersion, hostileRecord.Trigger}},
		{"reflected namespace", "/v1/cv/workloads?format=html&namespace=" + url.QueryEscape(hostileNamespace), []string{hostileNamespace}},
	}
	for _, pg := range pages {
		t.Run(pg.name, func(t *testing.T) { assertInert(t, b, p.url()+pg.path, pg.literal) })
	}
	assertJSONNotHTML(t, p.url()+"/v1/cv/workloads?format=json&namespace="+url.QueryEscape(hostileNamespace))
}

func withTime(r history.Record) history.Record {
	r.Time = time.Now()
	return r
}

// assertInert loads url and checks that nothing hostile became live.
func assertInert(t *testing.T, b context.Context, url string, literal []string) {
	t.Helper()
	var xss any
	var handlers, injectedScripts int
	shown := map[string]bool{}
	actions := []chromedp.Action{
		chromedp.Navigate(url),
		chromedp.WaitReady("body", chromedp.ByQuery),
		chromedp.Evaluate(`window.__xss === undefined ? null : window.__xss`, &xss),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("*")).filter(e => Array.from(e.attributes).some(a => a.name.startsWith("on"))).length`, &handlers),
		chromedp.Evaluate(`Array.from(document.scripts).filter(s => s.textContent.includes("__xss")).length`, &injectedScripts),
	}
	for _, s := range literal {
		var found bool
		actions = append(actions, chromedp.Evaluate(`(s => Array.from(document.querySelectorAll("*")).some(e =>
			Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.includes(s)) ||
			Array.from(e.attributes).some(a => a.value.includes(s))))(`+jsString(s)+`)`, &found),
			chromedp.ActionFunc(func(context.Context) error { shown[s] = found; return nil }))
	}
	if err := chromedp.Run(b, actions...); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	if xss != nil {
		t.Errorf("hostile script ran: window.__xss = %v", xss)
	}
	if handlers != 0 || injectedScripts != 0 {
		t.Errorf("%d elements with event-handler attributes, %d injected scripts", handlers, injectedScripts)
	}
	for s, ok := range shown {
		if !ok {
			t.Errorf("hostile string not shown literally: %s", s)
		}
	}
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`).Replace(s) + `"`
}

// assertJSONNotHTML: the JSON view is never served as something a browser
// would render as a page.
func assertJSONNotHTML(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	e2eenv.Must(t, err)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("JSON view served as %q", ct)
	}
}

// chromium starts headless Chromium (test/browsertest).
func chromium(t *testing.T) context.Context {
	return browsertest.Start(t, 1400, 700, 2*time.Minute)
}
