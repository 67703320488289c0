package digestcache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// counting reads answer the digest itself and count how often they ran.
func counting(reads *atomic.Int32) ReadFunc[string] {
	return func(_ context.Context, _ registry.Repo, digest string) (string, time.Time) {
		reads.Add(1)
		return "answer for " + digest, time.Time{}
	}
}

// waitFor requests digest and waits for its done callback.
func waitFor(t *testing.T, c *Cache[string], digest string) {
	t.Helper()
	done := make(chan struct{})
	c.Request(context.Background(), registry.Repo{Name: "r"}, digest, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the read of %s never finished", digest)
	}
}

// waitUnclaimed waits until the cache has dropped its claim on digest (a
// read whose context ended).
func waitUnclaimed(t *testing.T, c *Cache[string], digest string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		_, claimed := c.entries[digest]
		c.mu.Unlock()
		if !claimed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled read of %s still holds its claim", digest)
		}
	}
}

func TestEachDigestIsReadOnceUntilForgotten(t *testing.T) {
	var reads atomic.Int32
	c := New(counting(&reads))
	if _, ok := c.Lookup("d1"); ok {
		t.Fatal("an answer before any read")
	}
	waitFor(t, c, "d1")
	c.Request(context.Background(), registry.Repo{Name: "r"}, "d1", func() { t.Error("a second read of d1 started") })
	if got, ok := c.Lookup("d1"); !ok || got != "answer for d1" || reads.Load() != 1 {
		t.Fatalf("lookup %q %v after %d reads; want the answer after one read", got, ok, reads.Load())
	}
	c.Forget("d1")
	if _, ok := c.Lookup("d1"); ok {
		t.Fatal("a forgotten answer is still known")
	}
	waitFor(t, c, "d1")
	if reads.Load() != 2 {
		t.Errorf("%d reads, want a second one after Forget", reads.Load())
	}
}

func TestARequestEndedBeforeItRanCanBeAskedAgain(t *testing.T) {
	var reads atomic.Int32
	c := New(counting(&reads))
	for range maxConcurrent { // every slot busy
		c.slots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.Request(ctx, registry.Repo{Name: "r"}, "d1", nil)
	cancel()
	waitUnclaimed(t, c, "d1")
	for range maxConcurrent {
		<-c.slots
	}
	waitFor(t, c, "d1")
	if reads.Load() != 1 {
		t.Errorf("%d reads, want the one after the cancelled request", reads.Load())
	}
}

func TestANilCacheKnowsNothingAndReadsNothing(t *testing.T) {
	var c *Cache[string]
	c.Request(context.Background(), registry.Repo{Name: "r"}, "d1", func() { t.Error("a nil cache read") })
	if _, ok := c.Lookup("d1"); ok {
		t.Error("a nil cache answered")
	}
	New[string](nil).Request(context.Background(), registry.Repo{Name: "r"}, "d1", func() { t.Error("a cache without a read func read") })
}

// TestADeferredReadIsNoAnswerAndRunsAgain: a read the request budget
// deferred stores nothing (Lookup still says pending, done is not called)
// and runs again at its retryAt; the answer after that is the one kept.
func TestADeferredReadIsNoAnswerAndRunsAgain(t *testing.T) {
	var reads atomic.Int32
	deferred := make(chan struct{})
	c := New(func(_ context.Context, _ registry.Repo, digest string) (string, time.Time) {
		if reads.Add(1) == 1 {
			defer close(deferred)
			return "", time.Now().Add(10 * time.Millisecond) // under minDeferral
		}
		return "answer for " + digest, time.Time{}
	})
	done := make(chan struct{})
	start := time.Now()
	c.Request(context.Background(), registry.Repo{Name: "r"}, "d1", func() { close(done) })
	<-deferred
	if _, ok := c.Lookup("d1"); ok {
		t.Fatal("a deferred read was stored as an answer")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the deferred read never ran again")
	}
	if got, ok := c.Lookup("d1"); !ok || got != "answer for d1" || reads.Load() != 2 {
		t.Fatalf("lookup %q %v after %d reads; want the second read's answer", got, ok, reads.Load())
	}
	if waited := time.Since(start); waited < minDeferral {
		t.Errorf("read again after %s, before the least deferral %s", waited, minDeferral)
	}
}

// TestAReadDeferredForeverIsStoredInTheEnd: after maxDeferrals the answer
// the read gave is kept, so a host whose budget never frees up does not
// keep a goroutine retrying for ever.
func TestAReadDeferredForeverIsStoredInTheEnd(t *testing.T) {
	var reads atomic.Int32
	c := New(func(context.Context, registry.Repo, string) (string, time.Time) {
		reads.Add(1)
		return "empty", time.Now()
	})
	c.deferralWait = time.Millisecond
	waitFor(t, c, "d1")
	if got, ok := c.Lookup("d1"); !ok || got != "empty" || reads.Load() != maxDeferrals+1 {
		t.Errorf("lookup %q %v after %d reads; want the last answer after %d", got, ok, reads.Load(), maxDeferrals+1)
	}
}

// TestADeferredReadEndsWithItsContext: a read waiting out a deferral when
// its ctx ends is forgotten, so a later Request starts it again.
func TestADeferredReadEndsWithItsContext(t *testing.T) {
	var reads atomic.Int32
	c := New(func(context.Context, registry.Repo, string) (string, time.Time) {
		reads.Add(1)
		return "", time.Now().Add(time.Hour)
	})
	ctx, cancel := context.WithCancel(context.Background())
	c.Request(ctx, registry.Repo{Name: "r"}, "d1", nil)
	for reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	waitUnclaimed(t, c, "d1")
}
