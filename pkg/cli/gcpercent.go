package cli

import (
	"os"
	"runtime/debug"

	"k8s.io/klog/v2"
)

// runGCPercent is the GOGC `cvmanager run` uses unless GOGC is set. The
// informer caches are the live heap; with Go's default of 100 the heap
// grows to twice that before a collection, and at 10,000 CVs that headroom
// was most of the process's memory. 50 trades it for more frequent
// collections of a mostly idle process (docs/operations.md, the figures in
// docs/performance.md).
const runGCPercent = 50

// tuneGC applies runGCPercent when the operator did not choose a GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(runGCPercent)
	klog.V(2).InfoS("GC target set", "gogc", runGCPercent, "reason", "GOGC not set")
}
