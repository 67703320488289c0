package cli

import (
	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// requestsPerTriggeredDigest is what a trigger for a new digest that no
// notification announced costs the registry host: the tag's HEAD, the tag
// list, the new version tag's HEAD (docs/registries.md).
const requestsPerTriggeredDigest = 3

// RegistryFlags are the command-line face of poller.Options.
type RegistryFlags struct{ poller.Options }

// AddFlags registers the registry flags.
func (r *RegistryFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&r.InsecureRegistries, "insecure-registry", nil, "registry host:port reached over plain HTTP (repeatable)")
	fs.StringVar(&r.CAFile, "registry-ca-file", "", "PEM bundle of extra CAs for registries")
	fs.StringVar(&r.ECREndpoint, "ecr-endpoint", "", "override the ECR API endpoint (VPC endpoint URL)")
	fs.Float64Var(&r.QPS, "registry-qps", poller.DefaultHostQPS, "sustained requests per second per registry host")
	fs.IntVar(&r.Burst, "registry-burst", poller.DefaultHostBurst, "burst of requests per registry host")
	fs.BoolVar(&r.NoCloudIdentity, "no-cloud-identity", false, "never log in to Artifact Registry, GCR or ACR with the controller's GCP/Azure identity (pull secrets only; for multi-tenant clusters)")
}

// NewResolver builds the shared, deduplicating poller over the registry layer.
func (r *RegistryFlags) NewResolver(m *metrics.Metrics) (poller.ImageResolver, error) {
	return poller.New(r.Options, m.Registry)
}
