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
	return func(_ context.Context, _ registry.Repo, digest string) string {
		reads.Add(1)
		return "answer for " + digest
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
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		_, claimed := c.entries["d1"]
		c.mu.Unlock()
		if !claimed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled read still holds its claim")
		}
	}
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
