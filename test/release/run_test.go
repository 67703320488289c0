package release

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e2eenv.Must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunExportsContinuously: `cvmanager run --export-interval` exports
// while it leads, and /v1/state shows the fresh state with a live owner.
func TestRunExportsContinuously(t *testing.T) {
	e := e2eenv.New(t)
	a := clusterA(t)
	seedCVs(t, e, 5)
	dir := filepath.Join(t.TempDir(), "state")
	port := freePort(t)
	ctx, cancel := context.WithCancel(e.Ctx)
	root := cli.NewRootCommand()
	root.SetOut(io.Discard)
	root.SetArgs([]string{"run", "--kubeconfig", a.Kubeconfig, "--namespace", e.NS, "--port", strconv.Itoa(port),
		"--leader-elect=false", "--state-backend", "local", "--state-path", dir, "--export-interval", "1s", "--cluster-id", "cluster-a"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("run: %v", err)
		}
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/v1/state", port)
	var got state.Listing
	e.Eventually(30*time.Second, "/v1/state lists the exported CVs", func() (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		got = state.Listing{}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			return false, err
		}
		return got.Objects == 5 && got.Alive, fmt.Errorf("%d %+v", resp.StatusCode, got)
	})
	if o := got.Manifest.Owner; o.ClusterID != "cluster-a" || time.Duration(o.Interval) != time.Second || o.ClaimedBy != state.ClaimExport {
		t.Errorf("owner = %+v", o)
	}
	first := got.Manifest.Owner.Heartbeat
	e.Eventually(10*time.Second, "the next export refreshes the heartbeat", func() (bool, error) {
		m := readManifest(t, dir)
		return m.Owner.Heartbeat.After(first), nil
	})
}
