package provenance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/localregistry"
)

func TestMerge(t *testing.T) {
	long := strings.Repeat("é", 700) // 1,400 bytes: clipped on a rune boundary
	tests := []struct {
		name                string
		annotations, labels map[string]string
		created             string
		want                cvv1.Provenance
	}{
		{name: "nothing", want: cvv1.Provenance{}},
		{name: "zero config time is not shown", created: "0001-01-01T00:00:00Z", want: cvv1.Provenance{}},
		{
			name: "labels only, config created as fallback",
			labels: map[string]string{provenance.RevisionKey: "abc", provenance.SourceKey: "https://git.example/a",
				provenance.AuthorsKey: "Ann", provenance.URLKey: "https://example/a", provenance.CIURLKey: "https://ci.example/1"},
			created: "2026-01-02T03:04:05Z",
			want: cvv1.Provenance{Revision: "abc", Source: "https://git.example/a", Created: "2026-01-02T03:04:05Z",
				Authors: "Ann", URL: "https://example/a", CILink: "https://ci.example/1"},
		},
		{
			name:        "annotations win over labels and created",
			annotations: map[string]string{provenance.RevisionKey: "from-annotation", provenance.CreatedKey: "2026-05-05T00:00:00Z"},
			labels:      map[string]string{provenance.RevisionKey: "from-label", provenance.SourceKey: "https://git.example/b"},
			created:     "2020-01-01T00:00:00Z",
			want:        cvv1.Provenance{Revision: "from-annotation", Source: "https://git.example/b", Created: "2026-05-05T00:00:00Z"},
		},
		{
			name:        "an empty annotation does not hide a label",
			annotations: map[string]string{provenance.RevisionKey: ""},
			labels:      map[string]string{provenance.RevisionKey: "label"},
			want:        cvv1.Provenance{Revision: "label"},
		},
		{
			name:   "too long values are clipped to the CRD's limits",
			labels: map[string]string{provenance.RevisionKey: long},
			want:   cvv1.Provenance{Revision: strings.Repeat("é", 512)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, provenance.Merge(tt.annotations, tt.labels, tt.created)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShortRevisionAndWebURL(t *testing.T) {
	revisions := map[string]string{
		"0123456789abcdef0123456789abcdef01234567": "0123456",
		"0123456789AB":             "0123456",
		"01234567890":              "01234567890", // too short to be a commit hash
		"v1.2.3":                   "v1.2.3",
		"release-0123456789abcdef": "release-0123456789abcdef",
	}
	for in, want := range revisions {
		if got := provenance.ShortRevision(in); got != want {
			t.Errorf("ShortRevision(%q) = %q, want %q", in, got, want)
		}
	}
	urls := map[string]string{
		"https://github.com/acme/web": "https://github.com/acme/web",
		"http://ci.local/run/1":       "http://ci.local/run/1",
		"javascript:alert(1)":         "",
		"JavaScript://x/%0aalert(1)":  "",
		"data:text/html,<script>":     "",
		"git@github.com:acme/web.git": "",
		"//evil.example/x":            "",
		"":                            "",
	}
	for in, want := range urls {
		if got := provenance.WebURL(in); got != want {
			t.Errorf("WebURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// reader is the registry layer's ArtifactReader on a real Distribution
// registry, as `cvmanager run` builds it.
func reader(t *testing.T) (*localregistry.Registry, registry.ArtifactReader) {
	t.Helper()
	reg := localregistry.StartForTest(t)
	_, r, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 100, Burst: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg, r
}

var labels = map[string]string{
	provenance.RevisionKey: "label-rev", provenance.SourceKey: "https://git.example/acme/web",
	provenance.AuthorsKey: "Team Web", provenance.CIURLKey: "https://ci.example/runs/7",
}

// TestReadImage: an image's manifest annotations win over its config
// labels, the config's created fills in, and the read costs one manifest
// GET and one blob GET.
func TestReadImage(t *testing.T) {
	reg, r := reader(t)
	annotations := map[string]string{provenance.RevisionKey: "0123456789abcdef0123456789abcdef01234567", provenance.URLKey: "https://acme.example"}
	digest, err := reg.PushAnnotated("acme/web", annotations, labels, "2026-03-04T05:06:07Z", "v1")
	if err != nil {
		t.Fatal(err)
	}
	before := requestCounts(reg)
	got, err := provenance.Read(context.Background(), r, registry.Repo{Name: reg.Repo("acme/web")}, digest)
	if err != nil {
		t.Fatal(err)
	}
	want := cvv1.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://git.example/acme/web",
		Created: "2026-03-04T05:06:07Z", Authors: "Team Web", URL: "https://acme.example", CILink: "https://ci.example/runs/7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"GET manifests": 1, "GET blobs": 1, "HEAD manifests": 0}, requestCounts(reg).minus(before)); diff != "" {
		t.Errorf("requests for one image (-want +got):\n%s", diff)
	}
}

// TestReadIndex: an index's own annotations win; the labels come from its
// linux/amd64 image (the arm64 one carries another revision).
func TestReadIndex(t *testing.T) {
	reg, r := reader(t)
	digest, err := reg.PushAnnotatedIndex("acme/multi", map[string]string{provenance.CreatedKey: "2026-07-08T09:10:11Z"}, labels, "v1")
	if err != nil {
		t.Fatal(err)
	}
	before := requestCounts(reg)
	got, err := provenance.Read(context.Background(), r, registry.Repo{Name: reg.Repo("acme/multi")}, digest)
	if err != nil {
		t.Fatal(err)
	}
	want := cvv1.Provenance{Revision: "label-rev", Source: "https://git.example/acme/web", Created: "2026-07-08T09:10:11Z",
		Authors: "Team Web", CILink: "https://ci.example/runs/7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"GET manifests": 2, "GET blobs": 1, "HEAD manifests": 0}, requestCounts(reg).minus(before)); diff != "" {
		t.Errorf("requests for one index (-want +got):\n%s", diff)
	}
}

// TestCacheReadsEachDigestOnce: a digest is read once however often it is
// asked for; a failed read is remembered as empty and not retried. That no
// other read ran is shown, not waited for: once the cache has no read
// under way (Wait), each started read's done has been sent, so the dones
// counted are all there will ever be.
func TestCacheReadsEachDigestOnce(t *testing.T) {
	reg, r := reader(t)
	digest, err := reg.PushAnnotated("acme/web", nil, labels, "", "v1")
	if err != nil {
		t.Fatal(err)
	}
	cache := provenance.NewCache(r)
	repo := registry.Repo{Name: reg.Repo("acme/web")}
	if _, ok := cache.Lookup(digest); ok {
		t.Fatal("Lookup found a digest never read")
	}
	before := requestCounts(reg)
	done := make(chan struct{}, 10)
	for range 5 {
		cache.Request(context.Background(), repo, digest, func() { done <- struct{}{} })
	}
	waitDone(t, done)
	got, ok := cache.Lookup(digest)
	if diff := cmp.Diff(cvv1.Provenance{Revision: "label-rev", Source: "https://git.example/acme/web", Authors: "Team Web",
		CILink: "https://ci.example/runs/7"}, got); !ok || diff != "" {
		t.Errorf("Lookup ok=%v (-want +got):\n%s", ok, diff)
	}
	cache.Request(context.Background(), repo, digest, func() { done <- struct{}{} })
	missing := "sha256:" + strings.Repeat("0", 64)
	cache.Request(context.Background(), repo, missing, func() { done <- struct{}{} })
	waitDone(t, done)
	cache.Request(context.Background(), repo, missing, func() { done <- struct{}{} })
	if got, ok := cache.Lookup(missing); !ok || !provenance.Empty(got) {
		t.Errorf("a failed read: Lookup = %+v, %v; want empty, true", got, ok)
	}
	cache.Wait()
	if len(done) != 0 {
		t.Errorf("%d extra reads finished", len(done))
	}
	// One read of the image (2 GETs) and one failed manifest GET, whatever
	// the number of requests.
	if diff := cmp.Diff(map[string]int64{"GET manifests": 2, "GET blobs": 1, "HEAD manifests": 0}, requestCounts(reg).minus(before)); diff != "" {
		t.Errorf("registry requests (-want +got):\n%s", diff)
	}
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("read not finished in 30 s")
	}
}

type counts map[string]int64

func requestCounts(reg *localregistry.Registry) counts {
	out := counts{}
	for _, k := range []string{"GET manifests", "GET blobs", "HEAD manifests"} {
		method, kind, _ := strings.Cut(k, " ")
		out[k] = reg.Count(method, kind)
	}
	return out
}

func (c counts) minus(before counts) map[string]int64 {
	out := map[string]int64{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

// TestAReadTheBudgetRefusesIsADeferral: with the host's budget spent, the
// read fails before reaching the registry, and the error says so through
// the registry layer's wrapping (poller.DeferredByBudget), with the time a
// token is expected: the cache then runs the read again instead of storing
// an empty provenance for good.
func TestAReadTheBudgetRefusesIsADeferral(t *testing.T) {
	reg := localregistry.StartForTest(t)
	digest, err := reg.PushAnnotated("acme/web", nil, labels, "2026-03-04T05:06:07Z", "v1")
	if err != nil {
		t.Fatal(err)
	}
	// One token a hundred seconds: the first request spends the burst, the
	// next would wait far past the background lane's limit.
	_, r, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 0.01, Burst: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := requestCounts(reg)
	_, err = provenance.Read(context.Background(), r, registry.Repo{Name: reg.Repo("acme/web")}, digest)
	until, deferred := poller.DeferredByBudget(err)
	if !deferred {
		t.Fatalf("Read on a spent budget: %v; want a budget deferral", err)
	}
	if wait := time.Until(until); wait < 10*time.Second || wait > 200*time.Second {
		t.Errorf("deferred until %s from now; want about the 100 s to the next token", wait.Round(time.Second))
	}
	if _, err := provenance.Read(context.Background(), r, registry.Repo{Name: reg.Repo("acme/web")}, digest); err == nil {
		t.Error("a second read on the spent budget succeeded")
	}
	if after := requestCounts(reg); after["GET blobs"] != before["GET blobs"] {
		t.Errorf("the registry served config reads on a spent budget: %v → %v", before, after)
	}
}
