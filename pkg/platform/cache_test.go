package platform_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// TestCacheReadsEachDigestOnce reads an arm64-only index, a two-platform
// index and a plain image from a real registry through the registry
// layer, then asks again and counts: the second round costs 0 requests.
func TestCacheReadsEachDigestOnce(t *testing.T) {
	reg := localregistry.StartForTest(t)
	_, reader, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 100, Burst: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	armOnly, err := reg.PushPlatformIndex("app", []v1.Platform{{OS: "linux", Architecture: "arm64"}}, "arm")
	if err != nil {
		t.Fatal(err)
	}
	both, err := reg.PushPlatformIndex("app", []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}, "both")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := reg.Push("app", "plain")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []platform.Platform{{OS: "linux", Architecture: "amd64"}}
	cache := platform.NewCache(reader)
	repo := registry.Repo{Name: reg.Repo("app")}
	ask := func() map[string]platform.Index {
		out := map[string]platform.Index{}
		for _, d := range []string{armOnly, both, plain} {
			done := make(chan struct{})
			if _, ok := cache.Lookup(d); !ok {
				cache.Request(context.Background(), repo, d, func() { close(done) })
				<-done
			}
			out[d], _ = cache.Lookup(d)
		}
		return out
	}
	got := ask()
	before := reg.Requests()
	again := ask()
	if n := reg.Requests() - before; n != 0 {
		t.Errorf("second round cost %d registry requests, want 0", n)
	}
	if diff := cmp.Diff(got, again, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("answers changed (-first +second):\n%s", diff)
	}
	for d, want := range map[string][]platform.Platform{armOnly: nodes, both: nil} {
		idx := got[d]
		if idx.Err != nil || !idx.IsIndex {
			t.Fatalf("%s: %+v", d, idx)
		}
		if diff := cmp.Diff(want, platform.MissingPlatforms(idx.Platforms, nodes)); diff != "" {
			t.Errorf("missing for %s (-want +got):\n%s", d, diff)
		}
	}
	if idx := got[plain]; idx.IsIndex || idx.Err != nil {
		t.Errorf("a plain image is not gated, got %+v", idx)
	}
}

// TestAReadTheBudgetDefersHoldsTheRollout: on a spent host budget the
// index read reaches no registry, its error is a budget deferral (so the
// cache reads again later), and the answer the cache keeps should it stop
// deferring holds the rollout instead of passing as a plain manifest.
func TestAReadTheBudgetDefersHoldsTheRollout(t *testing.T) {
	reg := localregistry.StartForTest(t)
	armOnly, err := reg.PushPlatformIndex("app", []v1.Platform{{OS: "linux", Architecture: "arm64"}}, "arm")
	if err != nil {
		t.Fatal(err)
	}
	// One token a hundred seconds: the first request spends the burst.
	_, reader, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 0.01, Burst: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := reg.Count("GET", "manifests")
	idx := platform.Read(context.Background(), reader, registry.Repo{Name: reg.Repo("app")}, armOnly)
	if _, deferred := poller.DeferredByBudget(idx.Err); !deferred {
		t.Fatalf("Read on a spent budget: %+v; want a budget deferral", idx)
	}
	if got := reg.Count("GET", "manifests"); got != before {
		t.Errorf("the registry served %d manifest reads on a spent budget", got-before)
	}
	if v := platform.Gate(idx, true, []platform.Platform{{OS: "linux", Architecture: "amd64"}}); v.Allowed || v.Pending {
		t.Errorf("gate on the deferred read's answer: %+v; want the rollout held", v)
	}
}
