package registry

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/localregistry"
)

var shaSyntax = regexp.MustCompile(`^(?:[0-9a-f]{5,40})$`)

// TestResolveFollowsMovedRepushedAndMultiArchTags: the digest a tag resolves
// to is always the one it points to now.
func TestResolveFollowsMovedRepushedAndMultiArchTags(t *testing.T) {
	reg := startRegistry(t)
	oci := insecureOCI()
	ctx := testContext(t)
	resolve := func(tag string) Image {
		t.Helper()
		img, err := oci.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo("team/app")}, Tag: tag, VersionSyntax: shaSyntax})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	d1 := push(t, reg, "team/app", "aaaaaaa", "env-prod")
	d2 := push(t, reg, "team/app", "bbbbbbb")
	if got := resolve("env-prod"); got.Digest != d1 || got.Version != "aaaaaaa" {
		t.Fatalf("before the move: %+v, want %s aaaaaaa", got, d1)
	}
	if _, err := reg.MoveTag("team/app", "env-prod", "bbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if got := resolve("env-prod"); got.Digest != d2 || got.Version != "bbbbbbb" {
		t.Errorf("moved tag: %+v, want %s bbbbbbb", got, d2)
	}
	d3 := push(t, reg, "team/app", "env-prod") // same tag, new content, no version tag
	if got := resolve("env-prod"); got.Digest != d3 || got.Version != "" {
		t.Errorf("re-pushed tag: %+v, want %s and no version", got, d3)
	}
	index, platforms, err := reg.PushIndex("team/app", "ccccccc", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	got := resolve("env-prod")
	if got.Digest != index || got.Version != "ccccccc" || got.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("multi-arch: %+v, want the index %s (not an image: %v)", got, index, platforms)
	}
}

// TestSteadyStatePollingCostsOneHeadAndNoGet: once a digest's version is
// known, polling costs a HEAD and nothing else, counted at the proxy.
func TestSteadyStatePollingCostsOneHeadAndNoGet(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	for i := 0; i < 10; i++ {
		push(t, reg, "team/app", fmt.Sprintf("%07x", i+1))
	}
	oci := insecureOCI()
	req := ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod", VersionSyntax: shaSyntax}
	if _, err := oci.Resolve(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	heads, gets, lists := proxy.Count("HEAD", "manifests"), proxy.Count("GET", "manifests"), proxy.Count("GET", "tags")
	const polls = 20
	for i := 0; i < polls; i++ {
		img, err := oci.Resolve(testContext(t), req)
		if err != nil || img.Version != "aaaaaaa" {
			t.Fatalf("poll %d: %+v %v", i, img, err)
		}
	}
	dHeads, dGets, dLists := proxy.Count("HEAD", "manifests")-heads, proxy.Count("GET", "manifests")-gets, proxy.Count("GET", "tags")-lists
	t.Logf("first resolve: %d HEAD, %d GET, %d tag pages; %d steady polls: %d HEAD, %d GET, %d tag pages", heads, gets, lists, polls, dHeads, dGets, dLists)
	if dHeads != polls || dGets != 0 || dLists != 0 {
		t.Errorf("steady state: %d HEAD, %d GET, %d lists; want %d HEAD and nothing else", dHeads, dGets, dLists, polls)
	}
	if gets != 0 {
		t.Errorf("even the first resolve should need no manifest GET, made %d", gets)
	}
}

// TestMissingDigestHeaderFallsBackToGet: a registry that leaves out
// Docker-Content-Digest costs a GET, and the digest is still right.
func TestMissingDigestHeaderFallsBackToGet(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	d := push(t, reg, "team/app", "env-prod")
	proxy.Inject(faultproxy.Match{Kind: "manifests"}, faultproxy.NoDigest())
	img, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d {
		t.Errorf("digest %s, want %s", img.Digest, d)
	}
	if proxy.Count("HEAD", "manifests") != 1 || proxy.Count("GET", "manifests") != 1 {
		t.Errorf("want one HEAD then one GET, got %d HEAD %d GET", proxy.Count("HEAD", "manifests"), proxy.Count("GET", "manifests"))
	}
}

// TestMalformedManifestWithoutDigestIsAnError: when the digest must come
// from hashing a GET body, a body that is not a manifest is refused rather
// than turned into a digest that names nothing.
func TestMalformedManifestWithoutDigestIsAnError(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	push(t, reg, "team/app", "env-prod")
	proxy.Inject(faultproxy.Match{Method: http.MethodHead, Kind: "manifests"}, faultproxy.NoDigest())
	for _, body := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`,
		`{"schemaVersion":2,"layers":[]}`,
		`{"schemaVersion":1,"name":"team/app","tag":"env-prod","fsLayers":[]}`,
		`<html>maintenance</html>`,
	} {
		rule := proxy.Inject(faultproxy.Match{Method: http.MethodGet, Kind: "manifests"}, faultproxy.Fault{Status: http.StatusOK, Body: body})
		img, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod"})
		if err == nil || !strings.Contains(err.Error(), "not a manifest") {
			t.Errorf("body %q: resolved to %q, err %v; want a not-a-manifest error", body, img.Digest, err)
		}
		rule.Remove()
	}
}

// TestTagListsOverSeveralPagesInEveryLinkStyle: Distribution's, Quay's
// (no brackets, opaque token) and Nexus's (no port) pagination.
func TestTagListsOverSeveralPagesInEveryLinkStyle(t *testing.T) {
	reg := startRegistry(t)
	var want []string
	for i := 0; i < 11; i++ {
		want = append(want, fmt.Sprintf("t%02d", i))
	}
	push(t, reg, "team/app", want...)
	for name, fault := range map[string]faultproxy.Fault{
		"distribution": {PageSize: 3}, "quay": faultproxy.QuayPaging(3), "nexus": faultproxy.NexusPaging(3),
	} {
		t.Run(name, func(t *testing.T) {
			proxy := startProxy(t, reg)
			proxy.Inject(faultproxy.Match{Kind: "tags"}, fault)
			got, err := insecureOCI().ListTags(testContext(t), Repo{Name: proxy.Repo("team/app")})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if pages := proxy.Count("GET", "tags"); pages != 4 {
				t.Errorf("%d pages fetched, want 4 (11 tags, 3 a page)", pages)
			}
		})
	}
}

// TestTokenAuthCachesTokensPerScope: against a registry with Bearer token
// auth, repeated polls reuse one token instead of minting one per request.
func TestTokenAuthCachesTokensPerScope(t *testing.T) {
	reg := startRegistry(t, localregistry.WithTokenAuth("ci", "s3cret", 0))
	proxy := startProxy(t, reg)
	d := push(t, reg, "team/app", "env-prod")
	oci := insecureOCI()
	ctx := testContext(t)
	issuedByPush := reg.Tokens.Issued("")
	req := ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app"), Auth: Auth{Username: "ci", Password: "s3cret"}}, Tag: "env-prod"}
	for i := 0; i < 5; i++ {
		img, err := oci.Resolve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if img.Digest != d {
			t.Fatalf("digest %s, want %s", img.Digest, d)
		}
	}
	if n := reg.Tokens.Issued("") - issuedByPush; n != 1 {
		t.Errorf("5 polls minted %d tokens, want 1", n)
	}
	// The client pings /v2/ once and fetches the token before the first
	// HEAD, so no HEAD is wasted on a 401.
	if heads := proxy.Count("HEAD", "manifests"); heads != 5 {
		t.Errorf("%d HEADs for 5 polls, want 5", heads)
	}
	_, err := oci.Resolve(ctx, ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod"})
	if err == nil || !strings.Contains(err.Error(), proxy.Repo("team/app")+":env-prod") {
		t.Errorf("anonymous access should fail naming the image, got %v", err)
	}
}

// TestBasicAuthFromFlagsAndPullSecrets: htpasswd registry, credentials as
// CLI flags and as a Kubernetes pull secret.
func TestBasicAuthFromFlagsAndPullSecrets(t *testing.T) {
	reg := startRegistry(t, localregistry.WithHtpasswd("ci", "s3cret"))
	d := push(t, reg, "team/app", "env-prod")
	secret := fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, reg.Host, base64.StdEncoding.EncodeToString([]byte("ci:s3cret")))
	for name, auth := range map[string]Auth{
		"flags":       {Username: "ci", Password: "s3cret"},
		"pull secret": {PullSecrets: [][]byte{[]byte(`{"auths":{}}`), []byte(secret)}},
	} {
		img, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: reg.Repo("team/app"), Auth: auth}, Tag: "env-prod"})
		if err != nil || img.Digest != d {
			t.Errorf("%s: %+v %v", name, img, err)
		}
	}
	_, err := insecureOCI().Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: reg.Repo("team/app"), Auth: Auth{Username: "ci", Password: "wrong"}}, Tag: "env-prod"})
	if err == nil || !strings.Contains(err.Error(), "env-prod") {
		t.Errorf("wrong password: %v", err)
	}
}

// TestAddTagsMovesOnlyTheManifest: retag keeps the exact bytes and media
// type (an index stays an index) and fetches no blob.
func TestAddTagsMovesOnlyTheManifest(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	index, _, err := reg.PushIndex("team/app", "ccccccc")
	if err != nil {
		t.Fatal(err)
	}
	oci := insecureOCI()
	ctx := testContext(t)
	repo := Repo{Name: proxy.Repo("team/app")}
	img, err := oci.AddTags(ctx, repo, "ccccccc", []string{"env-prod", "env-stage"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != index {
		t.Errorf("added tags to %s, want %s", img.Digest, index)
	}
	got, err := oci.TagsOf(ctx, repo, "env-stage")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Image{Digest: index, MediaType: "application/vnd.oci.image.index.v1+json", Tags: []string{"ccccccc", "env-prod", "env-stage"}}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if n := proxy.Count("", "blobs"); n != 0 {
		t.Errorf("retag touched %d blobs", n)
	}
	_, err = oci.AddTags(ctx, repo, "nope", []string{"x"})
	if err == nil || !strings.Contains(err.Error(), proxy.Repo("team/app")+":nope") {
		t.Errorf("unknown version: %v", err)
	}
}

func TestRemoveTagsIsRefusedOnPlainV2(t *testing.T) {
	err := insecureOCI().RemoveTags(testContext(t), Repo{Name: "127.0.0.1:1/team/app"}, []string{"env-prod"})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "127.0.0.1:1/team/app") {
		t.Errorf("got %v", err)
	}
}

// TestServerErrorsAndResetsAreErrorsThenRecover: with retries off (the
// controller's host guard backs off instead), a 503 or a reset is one failed
// poll, and the next poll succeeds.
func TestServerErrorsAndResetsAreErrorsThenRecover(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	d := push(t, reg, "team/app", "env-prod")
	oci := insecureOCI()
	req := ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod"}
	// net/http itself resends an idempotent request once when a reused
	// connection is reset, so resets apply to every request until removed.
	for _, fault := range []faultproxy.Fault{faultproxy.ServerError(503), faultproxy.ServerError(500), faultproxy.ConnectionReset()} {
		rule := proxy.Inject(faultproxy.Match{Method: "HEAD", Kind: "manifests"}, fault)
		if _, err := oci.Resolve(testContext(t), req); err == nil {
			t.Errorf("fault %+v: resolve succeeded", fault)
		}
		rule.Remove()
		if img, err := oci.Resolve(testContext(t), req); err != nil || img.Digest != d {
			t.Errorf("after fault %+v: %+v %v", fault, img, err)
		}
	}
}
