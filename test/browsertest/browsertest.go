// Package browsertest starts Debian's headless Chromium (installed by
// `make test`) for the tests that render pages in a real browser.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start starts Chromium with a throwaway profile and a width×height
// window, and returns its context, which ends after timeout.
//
// The browser is started here, not by the test's first action. A start
// that fails (the websocket address not printed in time on a loaded
// machine) then fails the test at once; before, the next chromedp.Run on
// the same context started a second browser, and chromedp closed the
// context's channel twice and panicked the whole test binary (seen in
// make test, test/faults). The address is awaited a minute, not 20 s.
func Start(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: `make test` installs it (apt-get install chromium): %v", err)
	}
	// Chromium may still write its profile for a moment after it is told to
	// stop, so the directory is removed best-effort instead of by t.TempDir.
	profile, err := os.MkdirTemp("", "cvmanager-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(width, height), chromedp.WSURLReadTimeout(time.Minute))
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}
