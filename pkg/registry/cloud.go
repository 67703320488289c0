package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"k8s.io/utils/clock"
)

// Provider names whose identity logs in to a registry, as Flux's
// `provider:` does. The values are those of a CV's spec.provider.
type Provider string

// Providers. ProviderAuto (empty) picks one from the registry's host.
const (
	ProviderAuto    Provider = ""
	ProviderGeneric Provider = "Generic"
	ProviderAWS     Provider = "AWS"
	ProviderGCP     Provider = "GCP"
	ProviderAzure   Provider = "Azure"
)

// ParseProvider reads a provider name in any case ("gcp", "Azure"); ""
// is ProviderAuto.
func ParseProvider(s string) (Provider, error) {
	for _, p := range []Provider{ProviderAuto, ProviderGeneric, ProviderAWS, ProviderGCP, ProviderAzure} {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown provider %q: use generic, aws, gcp or azure, or leave it out to choose from the host", s)
}

// ProviderOf is the provider a registry host implies: ECR hosts AWS,
// Artifact Registry (*.pkg.dev) and Container Registry (gcr.io, *.gcr.io)
// GCP, *.azurecr.io Azure, anything else Generic. A port is ignored.
func ProviderOf(host string) Provider {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	switch {
	case ecrHost.MatchString(host):
		return ProviderAWS
	case strings.HasSuffix(host, ".pkg.dev"), host == "gcr.io", strings.HasSuffix(host, ".gcr.io"):
		return ProviderGCP
	case strings.HasSuffix(host, ".azurecr.io"):
		return ProviderAzure
	default:
		return ProviderGeneric
	}
}

// effective is the provider that serves reg: the explicit one, else the
// one its host implies.
func (p Provider) effective(reg name.Registry) Provider {
	if p != ProviderAuto {
		return p
	}
	return ProviderOf(reg.RegistryStr())
}

// CloudOptions configure logins with a cloud's workload identity.
type CloudOptions struct {
	// GoogleTokenSource gives Google access tokens; nil means Application
	// Default Credentials, found on first use: GOOGLE_APPLICATION_CREDENTIALS,
	// gcloud's file, then the metadata server (GKE workload identity; the
	// GCE_METADATA_HOST environment variable moves it).
	GoogleTokenSource oauth2.TokenSource
	// AzureCredential gives Microsoft Entra tokens; nil means azidentity's
	// DefaultAzureCredential (environment, AKS workload identity, managed
	// identity), made on first use.
	AzureCredential azcore.TokenCredential
	// RefreshAhead renews a cloud token this long before it expires
	// (default 5 min), so no request carries a token about to lapse.
	RefreshAhead time.Duration
	// Clock is the clock for ACR refresh-token expiry; nil means real.
	Clock clock.Clock
	// Disabled turns cloud identities off: GCP and Azure hosts are read
	// with pull secrets or anonymously. The controller's identity serves
	// every CV in every namespace, which a multi-tenant cluster may not want.
	Disabled bool
}

// googleScope is the scope Artifact Registry and GCR accept.
const googleScope = "https://www.googleapis.com/auth/cloud-platform"

// cloudKeychain holds one token source per cloud for the process: every
// registry host of that cloud shares it, so tokens are fetched once and
// reused until shortly before they expire, not once per poll.
type cloudKeychain struct {
	opts CloudOptions
	acr  *acrExchanger

	mu     sync.Mutex
	google oauth2.TokenSource
	azure  azcore.TokenCredential
}

// newCloudKeychain builds the keychain; ACR token exchanges go through rt,
// the transport of registry requests.
func newCloudKeychain(opts CloudOptions, rt http.RoundTripper) *cloudKeychain {
	if opts.Disabled {
		return nil
	}
	if opts.RefreshAhead <= 0 {
		opts.RefreshAhead = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	k := &cloudKeychain{opts: opts, google: opts.GoogleTokenSource, azure: opts.AzureCredential}
	if k.google != nil {
		k.google = oauth2.ReuseTokenSourceWithExpiry(nil, k.google, opts.RefreshAhead)
	}
	k.acr = &acrExchanger{client: &http.Client{Transport: rt, Timeout: time.Minute}, keychain: k, tokens: map[string]acrToken{}}
	return k
}

// errNoIdentity marks a cloud identity that is not there (no credentials
// found, no token granted), as opposed to a registry refusing it.
var errNoIdentity = errors.New("no cloud identity")

// authenticator is the login for provider p on reg, or nil when p has no
// cloud identity here (Generic; AWS is served by the ECR implementation).
// A provider chosen by host (not explicit) falls back to anonymous access
// when the cloud identity is not there, so public images on gcr.io or
// pkg.dev keep working outside GCP.
func (k *cloudKeychain) authenticator(p Provider, explicit bool, reg name.Registry) authn.Authenticator {
	if k == nil {
		return nil
	}
	var login cloudAuth
	switch p {
	case ProviderGCP:
		login = k.googleLogin
	case ProviderAzure:
		login = func(ctx context.Context) (*authn.AuthConfig, error) { return k.acr.login(ctx, reg) }
	default:
		return nil
	}
	if explicit {
		return login
	}
	return cloudAuth(func(ctx context.Context) (*authn.AuthConfig, error) {
		cfg, err := login(ctx)
		if errors.Is(err, errNoIdentity) {
			return &authn.AuthConfig{}, nil
		}
		return cfg, err
	})
}

// cloudAuth is an authn.Authenticator that asks its cloud for a login each
// time go-containerregistry needs one (when it fetches a registry token),
// the cloud's cached token answering until shortly before it expires.
type cloudAuth func(ctx context.Context) (*authn.AuthConfig, error)

// Authorization implements authn.Authenticator.
func (c cloudAuth) Authorization() (*authn.AuthConfig, error) { return c(context.Background()) }

// AuthorizationContext implements authn.ContextAuthenticator.
func (c cloudAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	return c(ctx)
}

// googleLogin is Artifact Registry's and GCR's login: user
// oauth2accesstoken, the Google access token as password.
func (k *cloudKeychain) googleLogin(ctx context.Context) (*authn.AuthConfig, error) {
	ts, err := k.googleSource(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := ts.Token()
	if err != nil {
		return nil, fmt.Errorf("google access token (provider GCP): %w", err)
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: tok.AccessToken}, nil
}

// googleSource finds Application Default Credentials once; a failure is
// not remembered, so the next poll tries again.
func (k *cloudKeychain) googleSource(ctx context.Context) (oauth2.TokenSource, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.google != nil {
		return k.google, nil
	}
	creds, err := google.FindDefaultCredentialsWithParams(context.WithoutCancel(ctx), google.CredentialsParams{
		Scopes: []string{googleScope}, EarlyTokenRefresh: k.opts.RefreshAhead,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: google credentials (provider GCP): %w", errNoIdentity, err)
	}
	k.google = oauth2.ReuseTokenSourceWithExpiry(nil, creds.TokenSource, k.opts.RefreshAhead)
	return k.google, nil
}

// azureCredential makes DefaultAzureCredential once; a failure is retried.
func (k *cloudKeychain) azureCredential() (azcore.TokenCredential, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.azure != nil {
		return k.azure, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: azure credentials (provider Azure): %w", errNoIdentity, err)
	}
	k.azure = cred
	return cred, nil
}
