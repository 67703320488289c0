package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// newRegistryResolver builds the resolver `run` and `cr sync` use.
//
// Requests go through a per-host guard (rate budget, Retry-After, back-off)
// to the registry layer, which routes ECR hosts to the ECR API and the rest
// to the v2 protocol (HEAD for digests, tag listing only for a new digest).
// The shared resolver on top makes N CVs on one repo:tag cost one request
// per interval.
func newRegistryResolver(r *RegistryFlags, m *metrics.Metrics) (syncer.ImageResolver, error) {
	base, err := registryTransport(r.CAFile)
	if err != nil {
		return nil, err
	}
	var reg prometheus.Registerer
	if m != nil {
		reg = m.Registry
	}
	guard := syncer.NewHostGuard(base, r.QPS, r.Burst, reg)
	router := registry.NewRouter(
		registry.OCIOptions{Transport: guard, InsecureHosts: r.InsecureRegistries, NoRetries: true},
		registry.ECROptions{Endpoint: r.ECREndpoint, HTTPClient: &http.Client{Transport: guard}, Transport: guard},
		registry.HubOptions{},
	)
	return syncer.NewSharedResolver(registryResolver{router}, nil), nil
}

// registryTimeout bounds the wait for a registry's response headers: a
// registry that accepts connections and never answers must not hold a
// worker for longer (the host guard then backs off from it).
const registryTimeout = 15 * time.Second

func registryTransport(caFile string) (http.RoundTripper, error) {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = registryTimeout
	if caFile == "" {
		return t, nil
	}
	pool, err := certPool("--registry-ca-file", caFile)
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}

// certPool is the system's roots plus the PEM certificates in file, which
// the flag named flag gave.
func certPool(flag, file string) (*x509.CertPool, error) {
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

// Resolve implements syncer.ImageResolver.
func (a registryResolver) Resolve(ctx context.Context, req syncer.ResolveRequest) (syncer.ResolvedImage, error) {
	img, err := a.reg.Resolve(ctx, registry.ResolveRequest{
		Repo: registry.Repo{Name: req.Repo, Auth: registry.Auth{PullSecrets: req.PullSecrets}},
		Tag:  req.Tag, VersionSyntax: req.VersionSyntax,
	})
	if err != nil {
		return syncer.ResolvedImage{}, err
	}
	return syncer.ResolvedImage{Digest: img.Digest, Version: img.Version}, nil
}
