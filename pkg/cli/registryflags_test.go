package cli

import (
	"testing"

	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/trigger"
)

// TestDefaultRegistryBurstHoldsABurstOfTriggers: the trigger API takes
// trigger.Burst(--trigger-rate) calls back to back, and each can cost the
// registry host 3 requests; the host budget's default burst must take them
// all without a wait, or the API's promise stops at the registry.
func TestDefaultRegistryBurstHoldsABurstOfTriggers(t *testing.T) {
	var r RegistryFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	r.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	need := requestsPerTriggeredDigest * trigger.Burst(DefaultTriggerRate)
	if r.Burst < need {
		t.Errorf("--registry-burst defaults to %d; %d triggers back to back need %d", r.Burst, trigger.Burst(DefaultTriggerRate), need)
	}
}
