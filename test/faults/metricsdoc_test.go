package faults

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestEveryServedMetricIsDocumented runs the real controller through a
// poll and a rollout against a registry that sends Docker Hub's rate-limit
// headers, scrapes its /metrics and checks that every cvmanager_ family
// served is listed in docs/metrics.md, so the page cannot drift from the
// code again (four registry series were missing). The families the
// scenario must produce are asserted too, so the check cannot pass on an
// empty scrape.
func TestEveryServedMetricIsDocumented(t *testing.T) {
	f := newFixture(t, "metricsdoc")
	p := faultproxy.StartForTest(t, f.reg.URL())
	p.Inject(faultproxy.Match{}, faultproxy.Fault{Header: http.Header{
		"ratelimit-limit": {"100;w=21600"}, "ratelimit-remaining": {"99;w=21600"}}})
	repo := p.Repo("team/" + f.app)
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + repo + `:old"}]}}}}`
	_, err := f.Kube.AppsV1().Deployments(f.NS).Patch(f.Ctx, f.app, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	digest := f.push("v1")
	f.CreateCV(gen.NewCV(f.NS, f.app, repo))
	proc := f.startController("metricsdoc", "--insecure-registry", p.Host)
	proc.waitReady(f)
	f.WaitStatus(f.app, cvv1.StatusSuccess, digest, 90*time.Second)

	// The rollout counter is incremented just after the status write the
	// wait above sees, so the scrape is repeated briefly.
	want := []string{"cvmanager_polls_total", "cvmanager_rollouts_total", "cvmanager_registry_requests_total",
		"cvmanager_registry_request_duration_seconds", "cvmanager_registry_ratelimit_limit", "cvmanager_registry_ratelimit_remaining"}
	var served map[string]bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		served = servedFamilies(t, proc.url()+"/metrics")
		if allServed(served, want) || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range want {
		if !served[name] {
			t.Errorf("the scenario did not produce %s: the check below would not cover it", name)
		}
	}
	doc, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "docs", "metrics.md"))
	e2eenv.Must(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(cvmanager_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	var missing []string
	for name := range served {
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("families served but not listed in docs/metrics.md (-want +got):\n%s", diff)
	}
}

// servedFamilies scrapes url and returns the cvmanager_ families in it.
func servedFamilies(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	e2eenv.Must(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	e2eenv.Must(t, err)
	out := map[string]bool{}
	for name := range families {
		if strings.HasPrefix(name, "cvmanager_") {
			out[name] = true
		}
	}
	return out
}

func allServed(served map[string]bool, names []string) bool {
	for _, n := range names {
		if !served[n] {
			return false
		}
	}
	return true
}
