package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

func TestMain(m *testing.M) {
	code := controlplane.RunMain(m, controlplane.Options{})
	binproc.RemoveBinary() // built by TestKubectlPlugin
	os.Exit(code)
}

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// manifestHeads is what waitPolls reads: a registry's count of requests.
type manifestHeads interface {
	Count(method, pathKind string) int64
}

// waitPolls waits until the registry has answered n manifest HEADs more
// than since: each is a poll of the tag, so when the n-th arrives the
// polls before it have run to their end. It is the positive evidence a
// "nothing happened" check stands on, in place of a sleep.
func waitPolls(e *e2eenv.Env, reg manifestHeads, since int64, n int, timeout time.Duration) {
	e.T.Helper()
	e.Eventually(timeout, fmt.Sprintf("%d polls at the registry", n), func() (bool, error) {
		got := reg.Count("HEAD", "manifests") - since
		return got >= int64(n), fmt.Errorf("%d polls so far", got)
	})
}
