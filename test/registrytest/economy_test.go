package registrytest

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// These tests run the resolver `cvmanager run` builds (host guard, registry
// layer, shared poller) against an in-process registry behind fault
// proxies, and count what reaches the registry.

var shaSyntax = regexp.MustCompile(`^(?:[0-9a-f]{5,40})$`)

func startRegistry(t *testing.T) *localregistry.Registry { return localregistry.StartForTest(t) }

func startProxy(t *testing.T, reg *localregistry.Registry) *faultproxy.Proxy {
	return faultproxy.StartForTest(t, reg.URL())
}

func controllerResolver(t *testing.T, opts poller.Options) poller.ImageResolver {
	t.Helper()
	r, err := poller.New(opts, metrics.New().Registry)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestThousandPollersOverFiftyRefsCostFiftyRequestsPerInterval: 1,000
// pollers (20 per ref) asking at once, interval after interval, cost the
// registry one HEAD per distinct repo:tag per interval, and no GET.
func TestThousandPollersOverFiftyRefsCostFiftyRequestsPerInterval(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	var refs []poller.ResolveRequest
	for r := 0; r < 10; r++ {
		for tag := 0; tag < 5; tag++ {
			path := fmt.Sprintf("team/app%d", r)
			version := fmt.Sprintf("%07x", r*10+tag+1)
			if _, err := reg.Push(path, version, fmt.Sprintf("env-%d", tag)); err != nil {
				t.Fatal(err)
			}
			refs = append(refs, poller.ResolveRequest{Repo: proxy.Repo(path), Tag: fmt.Sprintf("env-%d", tag), VersionSyntax: shaSyntax})
		}
	}
	// A budget that fits 50 refs at once: the point here is the dedup.
	resolver := controllerResolver(t, poller.Options{InsecureRegistries: []string{proxy.Host}, QPS: 500, Burst: 500})
	const interval = 700 * time.Millisecond
	pollAll := func() {
		var wg sync.WaitGroup
		for i := 0; i < 1000; i++ {
			req := refs[i%len(refs)]
			req.MaxAge = interval
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := resolver.Resolve(context.Background(), req); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	pollAll() // warm-up: the first interval also names each digest's version
	t.Logf("first interval: %d HEAD, %d GET manifests, %d tag pages", proxy.Count("HEAD", "manifests"), proxy.Count("GET", "manifests"), proxy.Count("GET", "tags"))
	for round := 1; round <= 3; round++ {
		time.Sleep(interval + 100*time.Millisecond)
		heads, gets, lists := proxy.Count("HEAD", "manifests"), proxy.Count("GET", "manifests"), proxy.Count("GET", "tags")
		pollAll()
		dHeads, dGets, dLists := proxy.Count("HEAD", "manifests")-heads, proxy.Count("GET", "manifests")-gets, proxy.Count("GET", "tags")-lists
		t.Logf("interval %d: 1000 pollers → %d HEAD, %d GET, %d tag pages", round, dHeads, dGets, dLists)
		if dHeads != 50 || dGets != 0 || dLists != 0 {
			t.Errorf("interval %d: %d HEAD, %d GET, %d lists; want 50 HEAD only", round, dHeads, dGets, dLists)
		}
	}
}

// TestRetryAfterClosesOnlyTheLimitedHost: after a 429 with Retry-After: 5
// the host sees no request for 5 s, while CVs on another registry host keep
// polling on schedule.
func TestRetryAfterClosesOnlyTheLimitedHost(t *testing.T) {
	reg := startRegistry(t)
	limited, healthy := startProxy(t, reg), startProxy(t, reg)
	d, err := reg.Push("team/app", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	resolver := controllerResolver(t, poller.Options{InsecureRegistries: []string{limited.Host, healthy.Host}})
	limited.Inject(faultproxy.Match{Method: "HEAD", Kind: "manifests", Times: 1}, faultproxy.TooManyRequests("5"))
	var healthyFailures, limitedAnswers int
	deadline := time.Now().Add(6500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if img, err := resolver.Resolve(context.Background(), poller.ResolveRequest{Repo: healthy.Repo("team/app"), Tag: "env-prod"}); err != nil || img.Digest != d {
			healthyFailures++
		}
		if img, err := resolver.Resolve(context.Background(), poller.ResolveRequest{Repo: limited.Repo("team/app"), Tag: "env-prod"}); err == nil && img.Digest == d {
			limitedAnswers++
		}
		time.Sleep(200 * time.Millisecond)
	}
	rateLimitedAt, after := firstStatus(limited.Requests(), 429)
	if rateLimitedAt.IsZero() {
		t.Fatal("the 429 never reached the client")
	}
	for _, r := range after {
		if r.Time.Sub(rateLimitedAt) < 5*time.Second {
			t.Errorf("%s %s reached the limited host %s after the 429; Retry-After was 5 s", r.Method, r.Path, r.Time.Sub(rateLimitedAt))
		}
	}
	if len(after) == 0 || limitedAnswers == 0 {
		t.Errorf("the limited host was never asked again after Retry-After (%d requests, %d answers)", len(after), limitedAnswers)
	} else {
		t.Logf("first request after the 429 came %s later", after[0].Time.Sub(rateLimitedAt).Round(time.Millisecond))
	}
	if healthyFailures != 0 || healthy.Count("HEAD", "manifests") < 25 {
		t.Errorf("the other host: %d failures, %d HEADs; want none failed and one per 200 ms poll", healthyFailures, healthy.Count("HEAD", "manifests"))
	}
}

// firstStatus finds the first request answered with status and those after it.
func firstStatus(log []faultproxy.Request, status int) (time.Time, []faultproxy.Request) {
	for i, r := range log {
		if r.Status == status {
			return r.Time, log[i+1:]
		}
	}
	return time.Time{}, nil
}
