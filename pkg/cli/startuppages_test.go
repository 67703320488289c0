package cli

import (
	"context"
	"testing"
	"time"
)

// TestStartupPagesWaitForTheCaches: nothing is released before the caches
// synced, and a controller that stops first leaves no goroutine behind.
func TestStartupPagesWaitForTheCaches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	asked := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		releaseStartupPages(ctx, func() bool { asked <- struct{}{}; return false }, 0)
		close(done)
	}()
	<-asked
	<-asked // asked again on the next tick: still waiting
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("releaseStartupPages did not return when the controller stopped")
	}
}

// TestStartupPagesReleasedOnceSynced: once synced and settled, the pages
// go back (pkg/binarypages tests the release itself) and the function
// returns.
func TestStartupPagesReleasedOnceSynced(t *testing.T) {
	done := make(chan struct{})
	go func() {
		releaseStartupPages(context.Background(), func() bool { return true }, time.Millisecond)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("releaseStartupPages did not return once synced")
	}
}
