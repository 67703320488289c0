package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ecrToken is a decoded GetAuthorizationToken answer: Basic credentials for
// the registry protocol, valid 12 h.
type ecrToken struct {
	username, password string
	// endpoint is the registry's URL as ECR reports it (proxyEndpoint).
	endpoint *url.URL
	expires  time.Time
}

// Authenticator returns registry-protocol credentials for an ECR
// repository, from a GetAuthorizationToken answer cached until
// TokenRefreshAhead before it expires.
func (e *ECR) Authenticator(ctx context.Context, repo string) (authn.Authenticator, error) {
	loc, err := ParseECR(repo)
	if err != nil {
		return nil, err
	}
	t, err := e.token(ctx, loc)
	if err != nil {
		return nil, err
	}
	return &authn.Basic{Username: t.username, Password: t.password}, nil
}

func (e *ECR) token(ctx context.Context, loc ECRLocation) (ecrToken, error) {
	key := loc.Account + "/" + loc.Region
	e.tokenMu.Lock()
	defer e.tokenMu.Unlock()
	if t, ok := e.tokens[key]; ok && e.opts.Clock.Now().Before(t.expires.Add(-e.opts.TokenRefreshAhead)) {
		return t, nil
	}
	c, err := e.client(ctx, loc.Region)
	if err != nil {
		return ecrToken{}, err
	}
	out, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return ecrToken{}, fmt.Errorf("ECR authorization token for %s: %w", key, err)
	}
	if len(out.AuthorizationData) == 0 {
		return ecrToken{}, errors.New("ECR returned no authorization data")
	}
	t, err := decodeECRToken(aws.ToString(out.AuthorizationData[0].AuthorizationToken), aws.ToString(out.AuthorizationData[0].ProxyEndpoint))
	if err != nil {
		return ecrToken{}, err
	}
	t.expires = aws.ToTime(out.AuthorizationData[0].ExpiresAt)
	e.tokens[key] = t
	return t, nil
}

// decodeECRToken reads base64("AWS:<password>") and the proxy endpoint.
func decodeECRToken(token, endpoint string) (ecrToken, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return ecrToken{}, fmt.Errorf("ECR authorization token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ecrToken{}, errors.New("ECR authorization token is not user:password")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return ecrToken{}, fmt.Errorf("ECR proxy endpoint %q is not a URL", endpoint)
	}
	return ecrToken{username: user, password: pass, endpoint: u}, nil
}

// registryTransport is an authenticated registry-protocol transport to the
// repository at the proxy endpoint ECR reported.
func (e *ECR) registryTransport(ctx context.Context, loc ECRLocation) (http.RoundTripper, name.Repository, error) {
	t, err := e.token(ctx, loc)
	if err != nil {
		return nil, name.Repository{}, err
	}
	var opts []name.Option
	if t.endpoint.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(t.endpoint.Host+"/"+loc.Repository, opts...)
	if err != nil {
		return nil, name.Repository{}, err
	}
	base := e.opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	rt, err := transport.NewWithContext(ctx, r.Registry, &authn.Basic{Username: t.username, Password: t.password}, base, []string{r.Scope(transport.PullScope)})
	return rt, r, err
}
