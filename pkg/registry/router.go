package registry

import "context"

// Router is the Registry the product uses: it sends each call to the
// implementation for the repository's host (ECR hosts to ECR, Docker Hub to
// Hub, everything else to OCI) or for the explicit Auth.Provider.
type Router struct {
	OCI *OCI
	ECR *ECR
	Hub *Hub
}

// NewRouter builds the three implementations; the Hub shares the OCI client.
func NewRouter(oci OCIOptions, ecr ECROptions, hub HubOptions) *Router {
	o := NewOCI(oci)
	return &Router{OCI: o, ECR: NewECR(ecr), Hub: NewHub(o, hub)}
}

// For returns the implementation serving repo. A name that does not parse
// goes to OCI, which reports the parse error.
func (r *Router) For(repo string) Registry { return r.route(Repo{Name: repo}) }

// route also honours an explicit provider: AWS sends any host to the ECR
// API (which rejects non-ECR names), any other explicit provider keeps an
// ECR host on the v2 protocol with that provider's credentials.
func (r *Router) route(repo Repo) Registry {
	parsed, err := ParseRepository(repo.Name, false)
	if err != nil {
		return r.OCI
	}
	kind := KindOf(parsed.RegistryStr())
	switch {
	case repo.Auth.Provider == ProviderAWS || (kind == KindECR && repo.Auth.Provider == ProviderAuto):
		return r.ECR
	case kind == KindDockerHub:
		return r.Hub
	default:
		return r.OCI
	}
}

// Resolve implements Registry.
func (r *Router) Resolve(ctx context.Context, req ResolveRequest) (Image, error) {
	return r.route(req.Repo).Resolve(ctx, req)
}

// ListTags implements Registry.
func (r *Router) ListTags(ctx context.Context, repo Repo) ([]string, error) {
	return r.route(repo).ListTags(ctx, repo)
}

// TagsOf implements Registry.
func (r *Router) TagsOf(ctx context.Context, repo Repo, tag string) (Image, error) {
	return r.route(repo).TagsOf(ctx, repo, tag)
}

// AddTags implements Registry.
func (r *Router) AddTags(ctx context.Context, repo Repo, version string, tags []string) (Image, error) {
	return r.route(repo).AddTags(ctx, repo, version, tags)
}

// RemoveTags implements Registry.
func (r *Router) RemoveTags(ctx context.Context, repo Repo, tags []string) error {
	return r.route(repo).RemoveTags(ctx, repo, tags)
}

// ObserveTag records a tag → digest a verified push notification named
// (see OCI.ObserveTag). ECR needs none: DescribeImages answers every tag of
// a digest in one call.
func (r *Router) ObserveTag(repo, tag, digest string) {
	if _, ecr := r.route(Repo{Name: repo}).(*ECR); !ecr {
		r.OCI.ObserveTag(repo, tag, digest)
	}
}
