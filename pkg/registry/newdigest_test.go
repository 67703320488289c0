package registry

import (
	"fmt"
	"regexp"
	"sync"
	"testing"

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
