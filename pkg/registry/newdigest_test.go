package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"cvmanager.dev/cvmanager/test/localregistry"
)

// pushVersions pushes n distinct images under version tags 1000000+i, 8 at
// a time, the last also under env-prod.
func pushVersions(t *testing.T, reg *localregistry.Registry, path string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tags := []string{fmt.Sprint(1000000 + i)}
			if i == n-1 {
				tags = append(tags, "env-prod")
			}
			if _, err := reg.Push(path, tags...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestNewDigestCostIsFlatInTheRepositorysHistory: in repositories with 1,
// 42 and 500 version tags, once the repository has been listed, each new
// digest of the followed tag costs the HEAD of the tag, one tag listing and
// one HEAD of the one version tag pushed with it: 3 requests, whatever the
// history (it was one HEAD per version tag, 47 requests at 42 tags).
// Counted by the registry itself.
func TestNewDigestCostIsFlatInTheRepositorysHistory(t *testing.T) {
	syntax := regexp.MustCompile(`^[0-9]{7}$`)
	reg := startRegistry(t)
	for _, n := range []int{1, 42, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := fmt.Sprintf("team/app-%d", n)
			pushVersions(t, reg, path, n)
			oci := insecureOCI()
			req := ResolveRequest{Repo: Repo{Name: reg.Repo(path)}, Tag: "env-prod", VersionSyntax: syntax}
			before := reg.Requests()
			img, err := oci.Resolve(testContext(t), req)
			if err != nil || img.Version != fmt.Sprint(1000000+n-1) {
				t.Fatalf("first resolve: %+v %v", img, err)
			}
			t.Logf("first resolve (nothing known, newest first): %d requests", reg.Requests()-before)
			for i := range 3 {
				version := fmt.Sprint(2000000 + i)
				d := push(t, reg, path, version, "env-prod")
				before, heads, lists := reg.Requests(), reg.Count("HEAD", "manifests"), reg.Count("GET", "tags")
				img, err := oci.Resolve(testContext(t), req)
				if err != nil || img.Digest != d || img.Version != version {
					t.Fatalf("new digest %d: %+v %v, want %s %s", i, img, err, d, version)
				}
				cost := reg.Requests() - before
				t.Logf("new digest %d: %d requests (%d HEAD, %d tag pages)", i, cost,
					reg.Count("HEAD", "manifests")-heads, reg.Count("GET", "tags")-lists)
				if cost > 3+1 || reg.Count("HEAD", "manifests")-heads != 2 {
					t.Errorf("new digest %d cost %d requests, %d HEADs; want at most 3 + 1 new tag, 2 HEADs", i, cost, reg.Count("HEAD", "manifests")-heads)
				}
			}
		})
	}
}

// TestRepushedVersionTagIsFoundAndCorrected: a version tag re-pushed to
// another image (breaking the immutability the cache assumes) is still
// found: no new or unknown tag carries the digest, so the known ones are
// asked again, and the entry is corrected.
func TestRepushedVersionTagIsFoundAndCorrected(t *testing.T) {
	reg := startRegistry(t)
	oci := insecureOCI()
	ctx := testContext(t)
	req := ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	for _, version := range []string{"aaaaaaa", "bbbbbbb"} {
		push(t, reg, "team/app", version, "env-prod")
		if img, err := oci.Resolve(ctx, req); err != nil || img.Version != version {
			t.Fatalf("%s: %+v %v", version, img, err)
		}
	}
	d := push(t, reg, "team/app", "aaaaaaa", "env-prod") // aaaaaaa re-pushed to a new image
	img, err := oci.Resolve(ctx, req)
	if err != nil || img.Digest != d || img.Version != "aaaaaaa" {
		t.Fatalf("after the re-push: %+v %v, want %s aaaaaaa", img, err, d)
	}
	if _, _, _, others := oci.tags.plan(reg.Repo("team/app"), []string{"aaaaaaa"}, d); len(others) != 0 {
		t.Errorf("the cache still holds the old digest of aaaaaaa")
	}
	// A CV following the version tag itself corrects the cache at its poll.
	d2 := push(t, reg, "team/app", "bbbbbbb")
	if _, err := oci.Resolve(ctx, ResolveRequest{Repo: req.Repo, Tag: "bbbbbbb", VersionSyntax: shaSyntax}); err != nil {
		t.Fatal(err)
	}
	if known, _, _, _ := oci.tags.plan(reg.Repo("team/app"), []string{"bbbbbbb"}, d2); known != "bbbbbbb" {
		t.Errorf("the poll of bbbbbbb did not record its new digest")
	}
}

// failingTag answers 503 to requests for one tag's manifest and forwards
// the rest to the registry.
type failingTag struct {
	tag  string
	next http.RoundTripper
}

func (f failingTag) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/manifests/"+f.tag) {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}
	return f.next.RoundTrip(r)
}

// TestUnreadableVersionTagIsAnErrorNotNoVersion: a HEAD of a candidate that
// fails (5xx, a budget refusal) makes the resolve fail, to be retried; it
// is never taken for "this digest has no version tag", which would be
// remembered for the digest (rollouts then named the image by its followed
// tag). Once the tag is readable, the version is found.
func TestUnreadableVersionTagIsAnErrorNotNoVersion(t *testing.T) {
	reg := startRegistry(t)
	rt := &failingTag{tag: "bbbbbbb", next: http.DefaultTransport}
	oci := NewOCI(OCIOptions{Insecure: true, NoRetries: true, Transport: rt})
	ctx := testContext(t)
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	req := ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	if _, err := oci.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	d := push(t, reg, "team/app", "bbbbbbb", "env-prod")
	if img, err := oci.Resolve(ctx, req); err == nil {
		t.Fatalf("with the version tag unreadable: %+v and no error", img)
	}
	rt.tag = "none"
	if img, err := oci.Resolve(ctx, req); err != nil || img.Version != "bbbbbbb" || img.Digest != d {
		t.Fatalf("once readable: %+v %v, want bbbbbbb %s", img, err, d)
	}
}

// TestObservedTagCostsNoListing: a tag → digest a push notification named
// (ObserveTag) answers the version of that digest: the new digest costs
// the HEAD of the followed tag alone.
func TestObservedTagCostsNoListing(t *testing.T) {
	reg := startRegistry(t)
	oci := insecureOCI()
	ctx := testContext(t)
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	req := ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	if _, err := oci.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	d := push(t, reg, "team/app", "bbbbbbb", "env-prod")
	oci.ObserveTag(reg.Repo("team/app"), "bbbbbbb", d)
	before, lists := reg.Requests(), reg.Count("GET", "tags")
	img, err := oci.Resolve(ctx, req)
	if err != nil || img.Version != "bbbbbbb" || img.Digest != d {
		t.Fatalf("%+v %v", img, err)
	}
	if n, l := reg.Requests()-before, reg.Count("GET", "tags")-lists; n != 1 || l != 0 {
		t.Errorf("new digest announced with its version tag cost %d requests (%d tag lists), want 1 HEAD", n, l)
	}
}

// TestPolledNewDigestIsNotHEADedTwice: the controller's poll first HEADs
// the followed tag alone, then asks for the version of the digest it saw
// (ResolveRequest.Digest). That second step lists the tags and HEADs the
// one new version tag, and never HEADs the followed tag again: a polled
// new digest costs 3 requests, not 4 (the bench counted the second HEAD).
func TestPolledNewDigestIsNotHEADedTwice(t *testing.T) {
	reg := startRegistry(t)
	oci := insecureOCI()
	ctx := testContext(t)
	req := ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	if _, err := oci.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	d := push(t, reg, "team/app", "bbbbbbb", "env-prod")
	before, heads := reg.Requests(), reg.Count("HEAD", "manifests")
	seen, err := oci.Resolve(ctx, ResolveRequest{Repo: req.Repo, Tag: req.Tag})
	if err != nil || seen.Digest != d {
		t.Fatalf("digest-only poll: %+v %v, want %s", seen, err, d)
	}
	req.Digest = seen.Digest
	img, err := oci.Resolve(ctx, req)
	if err != nil || img.Digest != d || img.Version != "bbbbbbb" {
		t.Fatalf("version of the digest seen: %+v %v, want bbbbbbb %s", img, err, d)
	}
	if n, h := reg.Requests()-before, reg.Count("HEAD", "manifests")-heads; n != 3 || h != 2 {
		t.Errorf("polled new digest cost %d requests, %d HEADs; want 3: HEAD env-prod, tag list, HEAD bbbbbbb", n, h)
	}
}

// TestKeptManifestServesTheProvenanceRead: with KeepManifests (the
// controller reads each new digest's provenance), the version lookup GETs
// the new version tag instead of HEADing it and the provenance's manifest
// read is answered from that body: a polled new digest and its manifest
// cost 3 requests (HEAD, tag list, GET), one GET as before. The body kept
// is the manifest of the digest; a second read goes to the registry.
func TestKeptManifestServesTheProvenanceRead(t *testing.T) {
	reg := startRegistry(t)
	oci := NewOCI(OCIOptions{Insecure: true, NoRetries: true, KeepManifests: true})
	ctx := testContext(t)
	repo := Repo{Name: reg.Repo("team/app")}
	req := ResolveRequest{Repo: repo, Tag: "env-prod", VersionSyntax: shaSyntax}
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	if _, err := oci.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	d := push(t, reg, "team/app", "bbbbbbb", "env-prod")
	before, gets := reg.Requests(), reg.Count("GET", "manifests")
	seen, err := oci.Resolve(ctx, ResolveRequest{Repo: repo, Tag: req.Tag})
	if err != nil {
		t.Fatal(err)
	}
	req.Digest = seen.Digest
	if img, err := oci.Resolve(ctx, req); err != nil || img.Digest != d || img.Version != "bbbbbbb" {
		t.Fatalf("version of the digest seen: %+v %v, want bbbbbbb %s", img, err, d)
	}
	m, err := oci.Manifest(ctx, repo, d)
	if err != nil || m.Descriptor.Digest.String() != d || !m.Descriptor.MediaType.IsImage() {
		t.Fatalf("manifest of %s: %+v %v", d, m.Descriptor, err)
	}
	if h, _, err := v1.SHA256(bytes.NewReader(m.Body)); err != nil || h.String() != d {
		t.Errorf("the body kept hashes to %s, want %s", h, d)
	}
	if n, g := reg.Requests()-before, reg.Count("GET", "manifests")-gets; n != 3 || g != 1 {
		t.Errorf("new digest and its manifest cost %d requests, %d manifest GETs; want 3 (HEAD, tag list, GET bbbbbbb), 1", n, g)
	}
	before = reg.Requests()
	if _, err := oci.Manifest(ctx, repo, d); err != nil || reg.Requests()-before != 1 {
		t.Errorf("a second read: %v, %d requests; want one GET (the body is kept for one read)", err, reg.Requests()-before)
	}
}

// TestKeptManifestFaultIsAnError: with KeepManifests, a GET of the new
// version tag that fails is an error to retry, as a failed HEAD is, never
// "no version" and never a kept body.
func TestKeptManifestFaultIsAnError(t *testing.T) {
	reg := startRegistry(t)
	rt := &failingTag{tag: "bbbbbbb", next: http.DefaultTransport}
	oci := NewOCI(OCIOptions{Insecure: true, NoRetries: true, Transport: rt, KeepManifests: true})
	ctx := testContext(t)
	req := ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	if _, err := oci.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	d := push(t, reg, "team/app", "bbbbbbb", "env-prod")
	if img, err := oci.Resolve(ctx, req); err == nil {
		t.Fatalf("with the version tag unreadable: %+v and no error", img)
	}
	if _, ok := oci.kept.entries[reg.Repo("team/app")+"@"+d]; ok {
		t.Error("a manifest was kept from a failed read")
	}
	rt.tag = "none"
	if img, err := oci.Resolve(ctx, req); err != nil || img.Version != "bbbbbbb" || img.Digest != d {
		t.Fatalf("once readable: %+v %v, want bbbbbbb %s", img, err, d)
	}
}
