package poller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// countingResolver answers after a short delay and counts its calls; it
// stands in for a registry in these unit tests (the e2e tests use a real one).
type countingResolver struct {
	calls atomic.Int64
	fail  atomic.Bool
}

func (c *countingResolver) Resolve(ctx context.Context, req ResolveRequest) (ResolvedImage, error) {
	c.calls.Add(1)
	time.Sleep(5 * time.Millisecond)
	if c.fail.Load() {
		return ResolvedImage{}, errors.New("registry down")
	}
	return ResolvedImage{Digest: "sha256:" + req.Repo + req.Tag}, nil
}

func TestSharedResolverOneRequestPerRefPerInterval(t *testing.T) {
	upstream := &countingResolver{}
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	shared := NewSharedResolver(upstream, clock)

	poll := func() {
		var wg sync.WaitGroup
		for i := 0; i < 1000; i++ { // 1,000 pollers over 50 distinct refs
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req := ResolveRequest{Repo: "reg/app", Tag: fmt.Sprintf("t%d", i%50), MaxAge: time.Minute}
				img, err := shared.Resolve(context.Background(), req)
				if err != nil || img.Digest != "sha256:reg/app"+req.Tag {
					t.Errorf("wrong answer %+v %v", img, err)
				}
			}(i)
		}
		wg.Wait()
	}
	poll()
	if got := upstream.calls.Load(); got != 50 {
		t.Fatalf("first interval: %d upstream requests, want 50", got)
	}
	poll() // same interval: all answers reused
	if got := upstream.calls.Load(); got != 50 {
		t.Fatalf("within the interval: %d upstream requests, want still 50", got)
	}
	clock.Step(time.Minute)
	poll()
	if got := upstream.calls.Load(); got != 100 {
		t.Fatalf("next interval: %d upstream requests, want 100", got)
	}
}

func TestSharedResolverForcesAndDoesNotCacheErrors(t *testing.T) {
	upstream := &countingResolver{}
	shared := NewSharedResolver(upstream, nil)
	req := ResolveRequest{Repo: "r", Tag: "t", MaxAge: time.Hour}
	_, _ = shared.Resolve(context.Background(), req)
	req.MaxAge = 0 // a push trigger
	_, _ = shared.Resolve(context.Background(), req)
	if got := upstream.calls.Load(); got != 2 {
		t.Errorf("MaxAge 0 did not force a request: %d calls", got)
	}
	upstream.fail.Store(true)
	req.MaxAge = 0
	if _, err := shared.Resolve(context.Background(), req); err == nil {
		t.Fatal("want the error")
	}
	upstream.fail.Store(false)
	req.MaxAge = time.Hour
	if _, err := shared.Resolve(context.Background(), req); err != nil {
		t.Errorf("an error was cached: %v", err)
	}
	other := req
	other.PullSecrets = [][]byte{[]byte(`{"auths":{}}`)}
	before := upstream.calls.Load()
	_, _ = shared.Resolve(context.Background(), other)
	if upstream.calls.Load() != before+1 {
		t.Error("requests with different credentials shared a result")
	}
}

// blockingResolver answers only when released, like a registry that hangs.
type blockingResolver struct {
	calls   atomic.Int64
	release chan struct{}
}

func (b *blockingResolver) Resolve(ctx context.Context, req ResolveRequest) (ResolvedImage, error) {
	b.calls.Add(1)
	<-b.release
	return ResolvedImage{Digest: "sha256:late"}, nil
}

// TestSharedResolverJoinsASlowRequestOnlyForJoinWait: while one poll waits
// on a hanging registry, a second poll of the same ref gives up after
// JoinWait (freeing its worker) without sending a request of its own.
func TestSharedResolverJoinsASlowRequestOnlyForJoinWait(t *testing.T) {
	upstream := &blockingResolver{release: make(chan struct{})}
	shared := NewSharedResolver(upstream, nil)
	shared.joinWait = 50 * time.Millisecond
	req := ResolveRequest{Repo: "registry.example/app", Tag: "env-prod", MaxAge: time.Minute}
	first := make(chan error, 1)
	go func() { _, err := shared.Resolve(context.Background(), req); first <- err }()
	for upstream.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := shared.Resolve(context.Background(), req)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("joining a hanging request: err %v after %s, want an error after about 50ms", err, time.Since(start))
	}
	close(upstream.release)
	if err := <-first; err != nil {
		t.Errorf("the first poll, once answered: %v", err)
	}
	if got := upstream.calls.Load(); got != 1 {
		t.Errorf("upstream requests = %d, want 1", got)
	}
}

// TestShareKeySeparatesProviders: CVs naming different providers read with
// different identities, so they never share an answer.
func TestShareKeySeparatesProviders(t *testing.T) {
	keys := map[string]bool{}
	for _, p := range []string{"", "Generic", "GCP", "Azure"} {
		keys[shareKey(ResolveRequest{Repo: "europe-docker.pkg.dev/p/r/app", Tag: "v1", Provider: p})] = true
	}
	if len(keys) != 4 {
		t.Errorf("4 providers gave %d share keys, want 4", len(keys))
	}
}
