package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dora"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

const hostileReason = `</td><script>window.__xss=1</script><svg onload=alert(1)>`

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// withHistories serves two CVs in "shop" whose histories are written here:
// web rolled out twice today (one failure, restored after 30 min) and
// once 3 days ago; api once 2 hours ago.
func withHistories(t *testing.T) (string, *Handler) {
	t.Helper()
	cv := func(name string) *cvv1.ContainerVersion {
		return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name)},
			Spec: cvv1.ContainerVersionSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Container: cvv1.ContainerSpec{Name: "app"}}}
	}
	web, api := cv("web"), cv("api")
	src := fakeSource{cvs: []*cvv1.ContainerVersion{web, api}, workloads: []workload.Workload{deployment("shop", "web", "r/w:1"), deployment("shop", "api", "r/a:1")}}
	store := history.NewStore(fake.NewClientset())
	ctx := context.Background()
	add := func(c *cvv1.ContainerVersion, ago time.Duration, outcome string, seconds float64, reason string, prov ...*history.Provenance) {
		r := history.Record{Time: now.Add(-ago), Workload: "Deployment/" + c.Name, CV: c.Name, Outcome: outcome, DurationSeconds: seconds,
			FromVersion: "v1", ToVersion: "v2", Trigger: history.TriggerPoll, Reason: reason, Strategy: "Simple"}
		if len(prov) > 0 {
			r.Provenance = prov[0]
		}
		if err := store.Append(ctx, c, r); err != nil {
			t.Fatal(err)
		}
	}
	add(web, 72*time.Hour, history.OutcomeSuccess, 300, "")
	add(web, 90*time.Minute, history.OutcomeRolledBack, 120, hostileReason)
	add(web, time.Hour, history.OutcomeSuccess, 60, "")
	// api's image was built an hour before its rollout finished.
	add(api, 2*time.Hour, history.OutcomeSuccess, 30, "", &history.Provenance{Created: now.Add(-3 * time.Hour).Format(time.RFC3339)})
	mux := http.NewServeMux()
	h := NewHandler(src, store, src)
	h.Clock = clocktesting.NewFakeClock(now)
	h.Register(mux)
	return serve(t, mux), h
}

func TestActivityJSON(t *testing.T) {
	base, _ := withHistories(t)
	for _, tc := range []struct {
		window string
		want   map[string][]string // CV → outcomes, newest first; CVs in order of their latest rollout
		order  []string
	}{
		{"24h", map[string][]string{"web": {"Success", "RolledBack"}, "api": {"Success"}}, []string{"web", "api"}},
		{"7d", map[string][]string{"web": {"Success", "RolledBack", "Success"}, "api": {"Success"}}, []string{"web", "api"}},
	} {
		var act Activity
		code, body := fetch(t, base+"/v1/cv/activity?namespace=shop&window="+tc.window)
		if code != http.StatusOK || json.Unmarshal([]byte(body), &act) != nil {
			t.Fatalf("%d %s", code, body)
		}
		got, order := map[string][]string{}, []string{}
		for _, g := range act.ContainerVersions {
			order = append(order, g.Name)
			for _, r := range g.Rollouts {
				got[g.Name] = append(got[g.Name], r.Outcome)
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s outcomes (-want +got):\n%s", tc.window, diff)
		}
		if diff := cmp.Diff(tc.order, order); diff != "" {
			t.Errorf("%s order (-want +got):\n%s", tc.window, diff)
		}
	}
	if code, body := fetch(t, base+"/v1/cv/activity?window=1y"); code != http.StatusBadRequest || !strings.Contains(body, "use 24h, 7d or 30d") {
		t.Errorf("bad window: %d %s", code, body)
	}
}

// TestActivityPage parses the page: one SVG lane per CV, one mark per
// rollout, and the hostile reason is text in the table, never markup.
func TestActivityPage(t *testing.T) {
	base, _ := withHistories(t)
	code, page := fetch(t, base+"/v1/cv/activity?format=html&namespace=shop&window=24h")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, page)
	}
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var lanes, marks, scripts int
	var reasons []string
	walk(doc, func(n *html.Node) {
		switch {
		case n.Type != html.ElementNode:
		case n.Data == "g" && attr(n, "class") == "lane":
			lanes++
		case n.Data == "rect":
			marks++
		case n.Data == "script" || attr(n, "onload") != "":
			scripts++
		case n.Data == "td" && attr(n, "class") == "error" && n.FirstChild != nil:
			reasons = append(reasons, n.FirstChild.Data)
		}
	})
	if lanes != 2 || marks != 3 || scripts != 0 {
		t.Errorf("lanes %d marks %d scripts %d, want 2, 3 and 0", lanes, marks, scripts)
	}
	if diff := cmp.Diff([]string{hostileReason}, reasons); diff != "" {
		t.Errorf("reasons shown (-want +got):\n%s", diff)
	}
	if !strings.Contains(page, `class="mark-failed"`) || !strings.Contains(page, `>RolledBack v1 → v2 (2026-03-10T10:30:00Z)</title>`) {
		t.Errorf("timeline lacks the failed mark and its label:\n%s", page)
	}
}

// TestDeliveryMetrics: the figures of the histories above, in JSON and as
// Prometheus series.
func TestDeliveryMetrics(t *testing.T) {
	base, h := withHistories(t)
	var rep Delivery
	code, body := fetch(t, base+"/v1/cv/metrics?namespace=shop&window=7d")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("%d %s", code, body)
	}
	week := (7 * 24 * time.Hour).Seconds()
	want := Delivery{Window: "7d", From: now.Add(-7 * 24 * time.Hour), To: now,
		Namespaces: []DORARow{{Namespace: "shop", Figures: dora.Figures{WindowSeconds: week, Deployments: 3, Failures: 1,
			DeploymentsPerDay: 3.0 / 7, LeadTimeSeconds: 3600, LeadTimes: 1, DeployDurationSeconds: 60, ChangeFailureRate: 0.25,
			TimeToRestoreSeconds: 120, Restores: 1}}},
		ContainerVersions: []DORARow{
			{Namespace: "shop", Name: "api", Figures: dora.Figures{WindowSeconds: week, Deployments: 1, DeploymentsPerDay: 1.0 / 7,
				LeadTimeSeconds: 3600, LeadTimes: 1, DeployDurationSeconds: 30}},
			{Namespace: "shop", Name: "web", Figures: dora.Figures{WindowSeconds: week, Deployments: 2, Failures: 1,
				DeploymentsPerDay: 2.0 / 7, DeployDurationSeconds: 180, ChangeFailureRate: 1.0 / 3, TimeToRestoreSeconds: 120, Restores: 1}},
		}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	// A CV without a rollout in the window has no per-CV series (absent
	// rather than seven zeros: 10,000 idle CVs were 70,000 series).
	src := h.Source.(fakeSource)
	src.cvs = append(src.cvs, &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "idle", UID: "uid-idle"}})
	h.Source = src
	h.records = &recordCache{now: func() time.Time { return h.Clock.Now() }, ttl: RecordCacheTTL}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.DORACollector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for key := range got {
		if strings.Contains(key, ",idle,") {
			t.Errorf("series for a CV without a rollout in the window: %s", key)
		}
	}
	if _, ok := got["cvmanager_dora_deployments,api,shop"]; !ok {
		t.Errorf("no series for api, which rolled out in the window: %v", got)
	}
	for key, v := range map[string]float64{
		"cvmanager_dora_deployments,web,shop": 2, "cvmanager_dora_change_failure_ratio,web,shop": 1.0 / 3,
		"cvmanager_dora_namespace_time_to_restore_seconds,shop": 120, "cvmanager_dora_namespace_lead_time_seconds,shop": 3600,
		"cvmanager_dora_namespace_deploy_duration_seconds,shop": 60,
	} {
		if got[key] != v {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], v, got)
		}
	}
	if code, page := fetch(t, base+"/v1/cv/metrics?format=html&namespace=shop"); code != http.StatusOK || !strings.Contains(page, "<td>33%</td>") {
		t.Errorf("metrics page %d:\n%s", code, page)
	}
	// The workloads page sums the namespace up: 3 deployments, 1 failed, 25%.
	_, page := fetch(t, base+"/v1/cv/workloads?format=html&namespace=shop")
	if !strings.Contains(page, `id="delivery"`) || !strings.Contains(page, "<td>3 (1 failed)</td>") || !strings.Contains(page, "<td>25%</td>") {
		t.Errorf("workloads page lacks the namespace's delivery figures:\n%s", page)
	}
}
