package e2e

import (
	"os"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/test/controlplane"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}))
}

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
