package registrytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/ecrapi"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// ecrRepo is an ECR repository name; with --ecr-endpoint its API calls go to
// test/ecrapi, a stand-in for ECR's JSON 1.1 API backed by an in-process
// registry. Live ECR cannot be reached from the machines these tests run on.
const ecrRepo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"

// startECR runs the stand-in over a registry that accepts only ECR's token
// user, and gives the SDK's default chain static credentials.
func startECR(t *testing.T) (*localregistry.Registry, *ecrapi.Server) {
	return ecrapi.StartForTest(t, nil)
}

// TestControllerResolvesECRThroughTheAPIWithDedup: the controller's resolver
// routes an ECR host to DescribeImages, and 20 CVs on one ref cost one call.
func TestControllerResolvesECRThroughTheAPIWithDedup(t *testing.T) {
	reg, api := startECR(t)
	d, err := reg.Push("team/app", "aaaaaaa", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	resolver := controllerResolver(t, poller.Options{ECREndpoint: api.URL})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := resolver.Resolve(context.Background(), poller.ResolveRequest{Repo: ecrRepo, Tag: "env-prod", VersionSyntax: shaSyntax, MaxAge: time.Minute})
			if err != nil || img.Digest != d || img.Version != "aaaaaaa" {
				t.Errorf("%+v %v", img, err)
			}
		}()
	}
	wg.Wait()
	if n := api.Calls(""); n != 1 {
		t.Errorf("20 CVs on one ECR ref made %d API calls, want 1 DescribeImages", n)
	}
}
