package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// Options configure how the controller talks to registries.
type Options struct {
	// InsecureRegistries are hosts reached over plain HTTP (local registries).
	InsecureRegistries []string
	// CAFile adds a CA bundle for registries with private certificates.
	CAFile string
	// ECREndpoint overrides the ECR API endpoint (VPC endpoints, tests).
	ECREndpoint string
	// QPS and Burst bound requests per registry host.
	QPS   float64
	Burst int
	// NoCloudIdentity turns off logins with GCP's and Azure's workload
	// identities (registry.CloudOptions.Disabled).
	NoCloudIdentity bool
	// KeepManifests: the reader will GET each new digest's manifest (image
	// provenance), so the version lookup fetches it (registry.OCIOptions).
	KeepManifests bool
}

// New builds the resolver `run`, `cr sync`, the tests and the demo use.
//
// Requests go through a per-host guard (rate budget, Retry-After, back-off)
// to the registry layer, which routes ECR hosts to the ECR API and the rest
// to the v2 protocol (HEAD for digests, tag listing only for a new digest).
// The shared resolver on top makes N CVs on one repo:tag cost one request
// per interval.
// Metrics register on reg when it is not nil.
func New(r Options, reg prometheus.Registerer) (ImageResolver, error) {
	resolver, _, err := NewWithReader(r, reg)
	return resolver, err
}

// NewWithReader is New that also returns the registry layer's
// ArtifactReader, over the same authenticated clients and host guard, for
// signature verification: its requests share the tokens and the budget.
func NewWithReader(r Options, reg prometheus.Registerer) (ImageResolver, registry.ArtifactReader, error) {
	base, err := Transport(r.CAFile)
	if err != nil {
		return nil, nil, err
	}
	guard := NewHostGuard(base, r.QPS, r.Burst, reg)
	router := registry.NewRouter(
		registry.OCIOptions{Transport: guard, InsecureHosts: r.InsecureRegistries, NoRetries: true,
			Cloud: registry.CloudOptions{Disabled: r.NoCloudIdentity}, KeepManifests: r.KeepManifests},
		registry.ECROptions{Endpoint: r.ECREndpoint, HTTPClient: &http.Client{Transport: guard}, Transport: guard},
		registry.HubOptions{},
	)
	return NewSharedResolver(registryResolver{router}, nil), backgroundReader{router}, nil
}

// backgroundReader sends every read of signatures, attestations and
// provenance in the background lane of the host budget: no rollout waits on
// them, so a burst of them must not delay a trigger's resolve.
type backgroundReader struct{ next registry.ArtifactReader }

func background(ctx context.Context) context.Context {
	return registry.WithLane(ctx, registry.LaneBackground)
}

// Manifest implements registry.ArtifactReader.
func (b backgroundReader) Manifest(ctx context.Context, repo registry.Repo, ref string) (registry.Manifest, error) {
	return b.next.Manifest(background(ctx), repo, ref)
}

// Blob implements registry.ArtifactReader.
func (b backgroundReader) Blob(ctx context.Context, repo registry.Repo, digest string, limit int64) ([]byte, error) {
	return b.next.Blob(background(ctx), repo, digest, limit)
}

// ObserveTag hands a tag → digest named by a verified push notification to
// the registry layer's version tag cache (pkg/trigger's TagObserver), so
// the resolve that notification triggers finds the version tag without a
// tag listing.
func (b backgroundReader) ObserveTag(repo, tag, digest string) {
	if o, ok := b.next.(tagObserver); ok {
		o.ObserveTag(repo, tag, digest)
	}
}

// tagObserver is what registry.Router offers for ObserveTag.
type tagObserver interface {
	ObserveTag(repo, tag, digest string)
}

// Referrers implements registry.ArtifactReader.
func (b backgroundReader) Referrers(ctx context.Context, repo registry.Repo, digest string) ([]v1.Descriptor, error) {
	return b.next.Referrers(background(ctx), repo, digest)
}

// registryTimeout bounds the wait for a registry's response headers: a
// registry that accepts connections and never answers must not hold a
// worker for longer (the host guard then backs off from it).
const registryTimeout = 15 * time.Second

// Transport is the HTTP transport to registries: bounded header wait,
// when caFile is set its CAs trusted besides the system roots, and every
// request logged at --v=4 (registry.LogRequests). The host guard wraps it,
// so the logged duration is the registry's, not the wait for the budget,
// and a request the guard refuses is not logged as sent.
func Transport(caFile string) (http.RoundTripper, error) {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = registryTimeout
	if caFile == "" {
		return registry.LogRequests(t), nil
	}
	pool, err := CertPool("--registry-ca-file", caFile)
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return registry.LogRequests(t), nil
}

// CertPool is the system's roots plus the PEM certificates in file, which
// the flag named flag gave.
func CertPool(flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", flag, file)
	}
	return pool, nil
}

// registryResolver adapts the registry layer to the syncer's interface,
// passing the CV's pull secrets as credentials.
type registryResolver struct{ reg registry.Registry }

// Resolve implements ImageResolver.
func (a registryResolver) Resolve(ctx context.Context, req ResolveRequest) (ResolvedImage, error) {
	img, err := a.reg.Resolve(ctx, registry.ResolveRequest{
		Repo: registry.Repo{Name: req.Repo, Auth: registry.Auth{PullSecrets: req.PullSecrets, Provider: registry.Provider(req.Provider)}},
		Tag:  req.Tag, VersionSyntax: req.VersionSyntax, Digest: req.Digest,
	})
	if err != nil {
		return ResolvedImage{}, err
	}
	return ResolvedImage{Digest: img.Digest, Version: img.Version}, nil
}
