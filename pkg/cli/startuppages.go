package cli

import (
	"context"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"cvmanager.dev/cvmanager/pkg/binarypages"
)

// startupSettle is how long after the caches synced `run` waits before it
// releases the binary's pages again: by then most of startup's one-off
// work (leader election, the first sync of each CV) has run, and what the
// steady work needs faults back once.
const startupSettle = 5 * time.Second

// releaseStartupPages waits for the caches, lets startup settle, then hands
// the binary's pages back to the kernel (pkg/binarypages says why): flag
// parsing, discovery and the first LISTs ran once; what the controller
// still runs faults back in on first use.
func releaseStartupPages(ctx context.Context, synced func() bool, settle time.Duration) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !synced() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(settle):
	}
	releasePages("startup")
}

// releasePages hands the binary's pages back once and logs what it did.
func releasePages(after string) {
	before := rssFile()
	covered, err := binarypages.PageOut()
	if err != nil {
		klog.V(2).InfoS("Binary pages not released", "after", after, "err", err)
		return
	}
	klog.V(2).InfoS("Released the binary's pages", "after", after, "mappedMiB", covered>>20, "rssFileBefore", before, "rssFileAfter", rssFile())
}

// rssFile is the RssFile line of /proc/self/status, for the log.
func rssFile() string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
