package dashboard

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// Hostile provenance: an image's labels are whatever its builder wrote.
var hostileProvenance = &cvv1.Provenance{
	Revision: `<img src=x onerror=window.__xss=4>`,
	Source:   `javascript:window.__xss=5`,
	CILink:   `https://ci.example/run?a=1&b="><script>window.__xss=6</script>`,
}

func provenanceCV(name string, st cvv1.ContainerVersionStatus) *cvv1.ContainerVersion {
	return &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: cvv1.ContainerVersionSpec{Tag: "env-prod", Container: cvv1.ContainerSpec{Name: "app"},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
		Status: st}
}

// TestRowProvenance: a row shows the provenance of the digest its workload
// runs: the last good version's, the rollout's while it runs the new one,
// none for another digest.
func TestRowProvenance(t *testing.T) {
	running := &cvv1.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://git.example/web",
		Created: "2026-01-01T00:00:00Z", Authors: "Ann", URL: "https://web.example", CILink: "https://ci.example/1"}
	next := &cvv1.Provenance{Revision: "next"}
	status := cvv1.ContainerVersionStatus{SuccessDigest: digestA, CurrDigest: digestB, Provenance: running,
		Rollout: &cvv1.RolloutStatus{Digest: digestB, Provenance: next}}
	tests := []struct {
		name, image string
		want        *Provenance
	}{
		{"last good", "r/web:v1@" + digestA, &Provenance{Revision: running.Revision, Source: running.Source, Created: running.Created,
			Authors: "Ann", URL: "https://web.example", CILink: "https://ci.example/1"}},
		{"rollout", "r/web:v2@" + digestB, &Provenance{Revision: "next"}},
		{"other digest", "r/web:v0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", nil},
		{"not pinned", "r/web:v0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := rowFor(provenanceCV("web", status), deployment("shop", "web", tt.image))
			if diff := cmp.Diff(tt.want, row.Provenance); diff != "" {
				t.Errorf("Provenance (-want +got):\n%s", diff)
			}
		})
	}
}

func provenanceServer(t *testing.T) string {
	t.Helper()
	src := fakeSource{
		cvs: []*cvv1.ContainerVersion{
			provenanceCV("web", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, SuccessDigest: digestA, CurrDigest: digestA,
				Provenance: &cvv1.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://git.example/web",
					CILink: "https://ci.example/runs/1"}}),
			provenanceCV("evil", cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, SuccessDigest: digestB, CurrDigest: digestB,
				Provenance: hostileProvenance}),
		},
		workloads: []workload.Workload{deployment("shop", "web", "r/web:v1@"+digestA), deployment("shop", "evil", "r/evil:v1@"+digestB)},
	}
	mux := http.NewServeMux()
	NewHandler(src, history.NewStore(fake.NewClientset()), src).Register(mux)
	return serve(t, mux)
}

// TestProvenanceJSON: the JSON rows carry the provenance under PascalCase
// keys, values as the image has them.
func TestProvenanceJSON(t *testing.T) {
	code, body := fetch(t, provenanceServer(t)+"/v1/cv/workloads?format=json&namespace=shop")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, r := range rows {
		got[r["Name"].(string)] = r["Provenance"]
	}
	want := map[string]any{
		"web": map[string]any{"Revision": "0123456789abcdef0123456789abcdef01234567", "Source": "https://git.example/web", "CILink": "https://ci.example/runs/1"},
		"evil": map[string]any{"Revision": hostileProvenance.Revision, "Source": hostileProvenance.Source,
			"CILink": hostileProvenance.CILink},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Provenance in JSON rows (-want +got):\n%s", diff)
	}
}

// provenanceLine is what the server's page shows for a row: the text of
// its provenance line and the links in it.
type provenanceLine struct {
	Text  string
	Links []string
	Title string
	Tags  []string
}

// TestProvenanceLineInPage: the server's row shows one line, the short
// revision with the full one as title, and links only http(s) URLs;
// hostile values stay text.
func TestProvenanceLineInPage(t *testing.T) {
	code, page := fetch(t, provenanceServer(t)+"/v1/cv/workloads?format=html&namespace=shop")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, page)
	}
	got := provenanceLines(t, page)
	want := map[string]provenanceLine{
		"web": {Text: "built from 0123456 · source · CI", Title: "0123456789abcdef0123456789abcdef01234567",
			Links: []string{"https://git.example/web", "https://ci.example/runs/1"}, Tags: []string{"code", "a", "a"}},
		"evil": {Text: "built from " + hostileProvenance.Revision + " · " + hostileProvenance.Source + " · CI",
			// html/template percent-encodes the quote and brackets in the URL.
			Title: hostileProvenance.Revision, Links: []string{"https://ci.example/run?a=1&b=%22%3e%3cscript%3ewindow.__xss=6%3c/script%3e"},
			Tags: []string{"code", "code", "a"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("provenance lines (-want +got):\n%s", diff)
	}
}

// provenanceLines are the provenance lines of a page by the data-name of
// their table row ("" for rows without one, the history's).
func provenanceLines(t *testing.T, page string) map[string]provenanceLine {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]provenanceLine{}
	walk(doc, func(tr *html.Node) {
		if tr.Type != html.ElementNode || tr.Data != "tr" {
			return
		}
		walk(tr, func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "div" && attr(n, "class") == "meta provenance" {
				out[attr(tr, "data-name")] = lineOf(n)
			}
		})
	})
	return out
}

func lineOf(n *html.Node) provenanceLine {
	line := provenanceLine{}
	walk(n, func(c *html.Node) {
		switch {
		case c.Type == html.TextNode:
			line.Text += c.Data
		case c.Type == html.ElementNode && c != n:
			line.Tags = append(line.Tags, c.Data)
			if c.Data == "a" {
				line.Links = append(line.Links, attr(c, "href"))
			}
			if c.Data == "code" && line.Title == "" {
				line.Title = attr(c, "title")
			}
		}
	})
	return line
}

// TestProvenanceInHistoryPage: a history record's provenance shows in the
// To cell with the row's markup; a record without shows none.
func TestProvenanceInHistoryPage(t *testing.T) {
	kube := fake.NewClientset()
	store := history.NewStore(kube)
	cv := provenanceCV("web", cvv1.ContainerVersionStatus{})
	ctx := t.Context()
	for _, rec := range []history.Record{
		{ID: "r1", CV: "web", Workload: "Deployment/web", ToVersion: "v1", ToDigest: digestA, Outcome: history.OutcomeSuccess},
		{ID: "r2", CV: "web", Workload: "Deployment/web", ToVersion: "v2", ToDigest: digestB, Outcome: history.OutcomeSuccess,
			Provenance: &history.Provenance{Revision: "v2-rev", Source: "https://git.example/web"}},
	} {
		if err := store.AppendTo(ctx, cv, "web.history", rec); err != nil {
			t.Fatal(err)
		}
	}
	src := fakeSource{cvs: []*cvv1.ContainerVersion{cv}, workloads: []workload.Workload{deployment("shop", "web", "r/web:v2@"+digestB)}}
	mux := http.NewServeMux()
	NewHandler(src, store, src).Register(mux)
	code, page := fetch(t, serve(t, mux)+"/v1/cv/workloads/web?namespace=shop&format=html")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, page)
	}
	want := map[string]provenanceLine{"": {Text: "built from v2-rev · source", Title: "v2-rev",
		Links: []string{"https://git.example/web"}, Tags: []string{"code", "a"}}}
	if diff := cmp.Diff(want, provenanceLines(t, page)); diff != "" {
		t.Errorf("history provenance (-want +got):\n%s", diff)
	}
	if n := strings.Count(page, `class="meta provenance"`); n != 1 {
		t.Errorf("%d provenance lines, want 1 (the record without provenance shows none)", n)
	}
}
