package registry

import (
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/test/ecrapi"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// The ECR tests run the real aws-sdk-go-v2 ECR client, through its endpoint
// override, against test/ecrapi: ECR's JSON 1.1 API backed by an in-process
// registry. Live ECR cannot be reached from the machines these tests run on.

const ecrRepo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"

type ecrEnv struct {
	reg   *localregistry.Registry
	api   *ecrapi.Server
	ecr   *ECR
	clock *clocktesting.FakeClock
}

// startECR runs a registry that only accepts ECR's token user ("AWS"), the
// ECR endpoint in front of it, and an ECR client with static credentials
// from the environment (the default chain's first link).
func startECR(t *testing.T) *ecrEnv {
	t.Helper()
	clock := clocktesting.NewFakeClock(time.Now())
	reg, api := ecrapi.StartForTest(t, clock)
	return &ecrEnv{reg: reg, api: api, clock: clock, ecr: NewECR(ECROptions{Endpoint: api.URL, Clock: clock})}
}

func TestECRResolveIsOneDescribeImagesCall(t *testing.T) {
	env := startECR(t)
	d := push(t, env.reg, "team/app", "aaaaaaa", "env-prod")
	img, err := env.ecr.Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: ecrRepo}, Tag: "env-prod", VersionSyntax: shaSyntax})
	if err != nil {
		t.Fatal(err)
	}
	want := Image{Digest: d, MediaType: "application/vnd.docker.distribution.manifest.v2+json", Version: "aaaaaaa", Tags: []string{"aaaaaaa", "env-prod"}}
	if diff := cmp.Diff(want, img); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if env.api.Calls("DescribeImages") != 1 || env.api.Calls("") != 1 {
		t.Errorf("calls: %d DescribeImages of %d; want exactly one call", env.api.Calls("DescribeImages"), env.api.Calls(""))
	}
	if auth := env.api.LastAuthorization(); !strings.Contains(auth, "AKIDCVMANAGERTEST/") || !strings.Contains(auth, "/eu-west-1/ecr/aws4_request") {
		t.Errorf("request not signed for eu-west-1 with the environment's key: %q", auth)
	}
}

func TestECRResolveFollowsMovedRepushedAndMultiArchTags(t *testing.T) {
	env := startECR(t)
	ctx := testContext(t)
	resolve := func(tag string) Image {
		t.Helper()
		img, err := env.ecr.Resolve(ctx, ResolveRequest{Repo: Repo{Name: ecrRepo}, Tag: tag, VersionSyntax: shaSyntax})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	push(t, env.reg, "team/app", "aaaaaaa", "env-prod")
	d2 := push(t, env.reg, "team/app", "bbbbbbb")
	if _, err := env.reg.MoveTag("team/app", "env-prod", "bbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if got := resolve("env-prod"); got.Digest != d2 || got.Version != "bbbbbbb" {
		t.Errorf("moved tag: %+v", got)
	}
	d3 := push(t, env.reg, "team/app", "env-prod")
	if got := resolve("env-prod"); got.Digest != d3 || got.Version != "" {
		t.Errorf("re-pushed tag: %+v", got)
	}
	index, _, err := env.reg.PushIndex("team/app", "ccccccc", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	if got := resolve("env-prod"); got.Digest != index || got.Version != "ccccccc" {
		t.Errorf("multi-arch: %+v, want index %s", got, index)
	}
}

func TestECRAddAndRemoveTags(t *testing.T) {
	env := startECR(t)
	ctx := testContext(t)
	repo := Repo{Name: ecrRepo}
	d := push(t, env.reg, "team/app", "aaaaaaa")
	blobsBefore := env.reg.Count("GET", "blobs")
	img, err := env.ecr.AddTags(ctx, repo, "aaaaaaa", []string{"env-prod", "env-stage"})
	if err != nil || img.Digest != d {
		t.Fatalf("add: %+v %v", img, err)
	}
	if env.api.Calls("BatchGetImage") != 1 || env.api.Calls("PutImage") != 2 {
		t.Errorf("retag made %d BatchGetImage and %d PutImage calls, want 1 and 2", env.api.Calls("BatchGetImage"), env.api.Calls("PutImage"))
	}
	if n := env.reg.Count("GET", "blobs") - blobsBefore; n != 0 {
		t.Errorf("retag read %d blobs", n)
	}
	if _, err := env.ecr.AddTags(ctx, repo, "aaaaaaa", []string{"env-prod"}); err != nil {
		t.Errorf("adding a tag already there (ImageAlreadyExistsException) must succeed: %v", err)
	}
	if err := env.ecr.RemoveTags(ctx, repo, []string{"env-stage"}); err != nil {
		t.Fatal(err)
	}
	got, err := env.ecr.TagsOf(ctx, repo, "aaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"aaaaaaa", "env-prod"}, got.Tags); diff != "" {
		t.Errorf("tags after remove (-want +got)\n%s", diff)
	}
	err = env.ecr.RemoveTags(ctx, repo, []string{"nope"})
	if err == nil || !strings.Contains(err.Error(), ecrRepo+":nope") {
		t.Errorf("removing a missing tag: %v", err)
	}
}

func TestECRImmutableTagsGiveAClearError(t *testing.T) {
	env := startECR(t)
	push(t, env.reg, "team/app", "aaaaaaa", "env-prod")
	push(t, env.reg, "team/app", "bbbbbbb")
	env.api.SetImmutable("team/app", true)
	_, err := env.ecr.AddTags(testContext(t), Repo{Name: ecrRepo}, "bbbbbbb", []string{"env-prod"})
	for _, want := range []string{ecrRepo + ":bbbbbbb", "env-prod", "immutable"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestECRErrorsNameRepoAndTag(t *testing.T) {
	env := startECR(t)
	push(t, env.reg, "team/app", "aaaaaaa")
	_, err := env.ecr.Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: ecrRepo}, Tag: "nope"})
	if err == nil || !strings.Contains(err.Error(), ecrRepo+":nope") || !strings.Contains(err.Error(), "image not found") {
		t.Errorf("missing tag: %v", err)
	}
	other := "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/missing"
	_, err = env.ecr.TagsOf(testContext(t), Repo{Name: other}, "v1")
	if err == nil || !strings.Contains(err.Error(), other+":v1") || !strings.Contains(err.Error(), "repository not found") {
		t.Errorf("missing repository: %v", err)
	}
}

// TestECRTokenIsCachedAndRefreshedAhead: registry-protocol calls use one
// GetAuthorizationToken until an hour before its 12 h expiry.
func TestECRTokenIsCachedAndRefreshedAhead(t *testing.T) {
	env := startECR(t)
	push(t, env.reg, "team/app", "aaaaaaa", "env-prod")
	ctx := testContext(t)
	list := func() {
		t.Helper()
		tags, err := env.ecr.ListTags(ctx, Repo{Name: ecrRepo})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"aaaaaaa", "env-prod"}, tags); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
	}
	list()
	list()
	env.clock.Step(10 * time.Hour)
	list()
	if n := env.api.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("%d token calls within 10 h, want 1", n)
	}
	env.clock.Step(90 * time.Minute) // 11.5 h: inside the last hour
	list()
	if n := env.api.Calls("GetAuthorizationToken"); n != 2 {
		t.Errorf("%d token calls after 11.5 h, want 2 (refreshed ahead of expiry)", n)
	}
	if env.reg.Count("GET", "tags") != 4 {
		t.Errorf("%d tag lists reached the registry, want 4", env.reg.Count("GET", "tags"))
	}
}

// TestRouterSendsEachHostToItsAPI: an ECR host goes to the ECR API, others
// to the v2 protocol.
func TestRouterSendsEachHostToItsAPI(t *testing.T) {
	env := startECR(t)
	dECR := push(t, env.reg, "team/app", "env-prod")
	plain := startRegistry(t)
	dPlain := push(t, plain, "team/app", "env-prod")
	router := NewRouter(OCIOptions{Insecure: true}, ECROptions{Endpoint: env.api.URL}, HubOptions{})
	for repo, want := range map[string]string{ecrRepo: dECR, plain.Repo("team/app"): dPlain} {
		img, err := router.Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: repo}, Tag: "env-prod"})
		if err != nil || img.Digest != want {
			t.Errorf("%s: %+v %v, want %s", repo, img, err, want)
		}
	}
	if env.api.Calls("DescribeImages") != 1 {
		t.Errorf("ECR API saw %d DescribeImages, want 1", env.api.Calls("DescribeImages"))
	}
	if _, ok := router.For("nginx").(*Hub); !ok {
		t.Errorf("nginx (Docker Hub) routed to %T", router.For("nginx"))
	}
}
