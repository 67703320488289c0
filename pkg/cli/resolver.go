package cli

import (
	"errors"

	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// newRegistryResolver adapts pkg/registry's shared poller to the syncer.
func newRegistryResolver(r *RegistryFlags, m *metrics.Metrics) (syncer.ImageResolver, error) {
	return nil, errors.New("this build has no registry layer yet: `run` and `cr sync` need it")
}
