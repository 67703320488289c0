// Package browsertest starts Debian's headless Chromium (installed by
// `make test`) for the tests that render pages in a real browser.
package browsertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"cvmanager.dev/cvmanager/test/binproc"
)

// Start starts Chromium with a throwaway profile and a width×height
// window, and returns a browser context, which ends after timeout.
//
// Chromium is started here, from binproc's launcher thread, and chromedp
// connects to it. chromedp's own allocator starts the browser with
// Pdeathsig from whichever OS thread runs the call, and the kernel sends
// that signal when that thread ends, not when the test binary does. Under
// make test's load a browser died within 90 ms of its start with nothing
// in its output, which is what that signal looks like (not proven: the
// thread's end was not observed); earlier a failed start made chromedp
// start a second browser on the same context and panic. The launcher
// thread never exits, so the browser dies only with the test binary (or
// at cleanup), as every other process the tests start.
func Start(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: `make test` installs it (apt-get install chromium): %v", err)
	}
	// The profile and Chromium's own temporary files (TMPDIR) live in one
	// directory, removed at cleanup, so runs leave nothing in /tmp.
	root, profile, err := browserDirs()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--hide-scrollbars", "--mute-audio", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-quic", "--user-data-dir="+profile, fmt.Sprintf("--window-size=%d,%d", width, height),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(root, "tmp"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := binproc.StartLocked(cmd); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	ws, err := devtoolsURL(stderr, time.Minute)
	if err != nil {
		binproc.Stop(cmd.Process.Pid, exited)
		t.Fatalf("starting chromium: %v", err)
	}
	alloc, cancelAlloc := chromedp.NewRemoteAllocator(context.Background(), ws)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		binproc.Stop(cmd.Process.Pid, exited)
		if err := removeWhenQuiet(root, 10*time.Second); err != nil {
			t.Logf("chromium's directory stays behind: %v", err)
		}
	})
	// chromedp opens a tab of its own beside the browser's first one; in
	// front, it renders frames (requestAnimationFrame runs) as a launched
	// browser's only tab does.
	if err := chromedp.Run(ctx, page.BringToFront()); err != nil {
		t.Fatalf("connecting to chromium at %s: %v", ws, err)
	}
	return ctx
}

// browserDirs makes the directory a browser runs in: its profile and its
// TMPDIR beneath one root.
func browserDirs() (root, profile string, err error) {
	root, err = os.MkdirTemp("", "cvmanager-chromium-")
	if err != nil {
		return "", "", err
	}
	profile = filepath.Join(root, "profile")
	for _, dir := range []string{profile, filepath.Join(root, "tmp")} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", "", err
		}
	}
	return root, profile, nil
}

// removeWhenQuiet removes dir, again while Chromium's helper processes,
// which outlive the browser by a moment, still write into it; it returns
// once the directory is gone, or the last error after wait.
func removeWhenQuiet(dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := os.RemoveAll(dir)
		if _, statErr := os.Stat(dir); os.IsNotExist(statErr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing %s: %v", dir, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// devtoolsURL reads Chromium's stderr until it prints the DevTools
// address, then keeps draining it so the browser never blocks on the pipe.
// The output read so far is in the error when the address does not come.
func devtoolsURL(stderr io.Reader, wait time.Duration) (string, error) {
	found := make(chan string, 1)
	var seen strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if _, url, ok := strings.Cut(line, "DevTools listening on "); ok {
				found <- strings.TrimSpace(url)
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
			seen.WriteString(line + "\n")
		}
	}()
	select {
	case url := <-found:
		return url, nil
	case <-done:
		return "", fmt.Errorf("chromium exited before printing its DevTools address:\n%s", seen.String())
	case <-time.After(wait):
		return "", fmt.Errorf("no DevTools address from chromium within %s", wait)
	}
}
