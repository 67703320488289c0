// Package binproc builds the cvmanager binary once per test binary and
// starts processes from it the way the suites that run the real binary
// need: tied to the test process's life (Pdeathsig), on a free loopback
// port. Each suite keeps its own process type; what they share is here.
package binproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/version"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// EnvBinary names a binary built beforehand, for repeated local runs.
const EnvBinary = "CVMANAGER_TEST_BINARY"

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/cvmanager once per test binary, as a user builds it,
// and returns its path. Call RemoveBinary from TestMain when done.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if prebuilt := os.Getenv(EnvBinary); prebuilt != "" {
			binPath = prebuilt
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "cvmanager-test-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cvmanager")
		start := time.Now()
		cmd := exec.Command("go", "build", "-tags", version.BuildTags, "-o", binPath, "./cmd/cvmanager")
		cmd.Dir = kubetest.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cvmanager: %v\n%s", err, out)
			return
		}
		t.Logf("built %s in %s", binPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemoveBinary deletes the binary Binary built (never a prebuilt one).
func RemoveBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// starts runs cmd.Start on one OS thread that never exits: Pdeathsig fires
// when the thread that forked dies, and Go retires idle threads.
var starts = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread()
		for f := range starts {
			f()
		}
	}()
}

// StartLocked starts cmd from that thread, so a SysProcAttr.Pdeathsig set
// on it really fires when the test binary dies.
func StartLocked(cmd *exec.Cmd) error {
	errc := make(chan error)
	starts <- func() { errc <- cmd.Start() }
	return <-errc
}

// FreePort is a loopback port free at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Stop ends the process pid, whose exit closes done: SIGTERM, then SIGKILL
// after 5 s. It returns once the process has exited.
func Stop(pid int, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
}

// FlushToDisk writes a freshly built binary back to disk, as a node has the
// binary of an image it pulled long before: `cvmanager run` hands its
// clean pages back to the kernel after startup, and the linker's pages
// stay dirty (and unreclaimable) for up to half a minute, so a footprint
// measured right after a build would measure the build.
func FlushToDisk(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
