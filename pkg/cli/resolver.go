package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// newRegistryResolver builds the resolver `run` and `cr sync` use.
//
// It asks with HEAD (which Docker Hub does not count as a pull), lists tags
// only the first time a digest is seen (to name its version), shares one
// request per repo:tag per interval across CVs, and goes through a per-host
// guard (rate budget, Retry-After, back-off).
func newRegistryResolver(r *RegistryFlags, m *metrics.Metrics) (syncer.ImageResolver, error) {
	base, err := registryTransport(r.CAFile)
	if err != nil {
		return nil, err
	}
	var reg prometheus.Registerer
	if m != nil {
		reg = m.Registry
	}
	transport := syncer.NewHostGuard(base, r.QPS, r.Burst, reg)
	upstream := &ggcrResolver{insecure: r.InsecureRegistries, transport: transport, versions: map[string]string{}}
	return syncer.NewSharedResolver(upstream, nil), nil
}

func registryTransport(caFile string) (http.RoundTripper, error) {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--registry-ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--registry-ca-file %s holds no PEM certificate", caFile)
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}

type ggcrResolver struct {
	insecure  []string
	transport http.RoundTripper
	// versions remembers the version tag of each digest, so a poll that
	// finds the digest unchanged costs one HEAD and no tag listing.
	mu       sync.Mutex
	versions map[string]string
}

// Resolve implements syncer.ImageResolver.
func (g *ggcrResolver) Resolve(ctx context.Context, req syncer.ResolveRequest) (syncer.ResolvedImage, error) {
	var opts []name.Option
	if host, err := name.NewRepository(req.Repo); err == nil && slices.Contains(g.insecure, host.RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(req.Repo+":"+req.Tag, opts...)
	if err != nil {
		return syncer.ResolvedImage{}, fmt.Errorf("invalid reference %s:%s: %w", req.Repo, req.Tag, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(g.transport), remote.WithAuth(authFor(ref, req.PullSecrets))}
	desc, err := remote.Head(ref, ropts...)
	if err != nil {
		return syncer.ResolvedImage{}, err
	}
	out := syncer.ResolvedImage{Digest: desc.Digest.String()}
	if req.VersionSyntax == nil || req.VersionSyntax.MatchString(req.Tag) {
		if req.VersionSyntax != nil {
			out.Version = req.Tag
		}
		return out, nil
	}
	cacheKey := req.Repo + "@" + out.Digest + "|" + req.VersionSyntax.String()
	g.mu.Lock()
	version, known := g.versions[cacheKey]
	g.mu.Unlock()
	if known {
		out.Version = version
		return out, nil
	}
	if out.Version, err = g.findVersion(ref, desc.Digest.String(), req, ropts); err != nil {
		return syncer.ResolvedImage{}, err
	}
	g.mu.Lock()
	g.versions[cacheKey] = out.Version
	g.mu.Unlock()
	return out, nil
}

// findVersion lists the tags and HEADs those matching versionSyntax until
// one has the digest; it runs once per new digest.
func (g *ggcrResolver) findVersion(ref name.Tag, digest string, req syncer.ResolveRequest, ropts []remote.Option) (string, error) {
	tags, err := remote.List(ref.Context(), ropts...)
	if err != nil {
		return "", err
	}
	for _, tag := range tags {
		if !req.VersionSyntax.MatchString(tag) {
			continue
		}
		if d, err := remote.Head(ref.Context().Tag(tag), ropts...); err == nil && d.Digest.String() == digest {
			return tag, nil
		}
	}
	return "", nil
}

// dockerConfig is the part of a .dockerconfigjson this resolver reads.
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// authFor picks credentials for the registry host from the pull secrets,
// falling back to anonymous access.
func authFor(ref name.Tag, pullSecrets [][]byte) authn.Authenticator {
	host := ref.RegistryStr()
	for _, data := range pullSecrets {
		var cfg dockerConfig
		if json.Unmarshal(data, &cfg) != nil {
			continue
		}
		for _, key := range []string{host, "https://" + host, "http://" + host} {
			if a, ok := cfg.Auths[key]; ok {
				return authn.FromConfig(a)
			}
		}
	}
	return authn.Anonymous
}
