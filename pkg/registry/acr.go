package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// acrUser is the user name ACR expects with a refresh token as password.
const acrUser = "00000000-0000-0000-0000-000000000000"

// azureScope is the Entra scope whose token ACR's /oauth2/exchange accepts
// (Azure Resource Manager's, as `az acr login` uses).
const azureScope = "https://management.azure.com/.default"

// acrRefreshTTL is how long an ACR refresh token is assumed to live when it
// carries no readable expiry (ACR's live about 3 h).
const acrRefreshTTL = 3 * time.Hour

// acrExchanger trades Entra tokens for ACR refresh tokens at
// https://<registry>/oauth2/exchange, one per registry, cached until
// RefreshAhead before they expire.
type acrExchanger struct {
	client   *http.Client
	keychain *cloudKeychain

	mu     sync.Mutex
	tokens map[string]acrToken // per registry host
}

type acrToken struct {
	refresh string
	expires time.Time
}

// login is ACR's login for reg: the null GUID user, a refresh token as
// password.
func (a *acrExchanger) login(ctx context.Context, reg name.Registry) (*authn.AuthConfig, error) {
	host := reg.RegistryStr()
	clk, ahead := a.keychain.opts.Clock, a.keychain.opts.RefreshAhead
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[host]; ok && clk.Now().Before(t.expires.Add(-ahead)) {
		return &authn.AuthConfig{Username: acrUser, Password: t.refresh}, nil
	}
	t, err := a.exchange(ctx, reg)
	if err != nil {
		return nil, err
	}
	a.tokens[host] = t
	return &authn.AuthConfig{Username: acrUser, Password: t.refresh}, nil
}

// exchange gets an Entra token (azidentity caches it) and trades it. The
// refresh token lives on its own after the trade, until its exp claim.
func (a *acrExchanger) exchange(ctx context.Context, reg name.Registry) (acrToken, error) {
	cred, err := a.keychain.azureCredential()
	if err != nil {
		return acrToken{}, err
	}
	entra, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{azureScope}})
	if err != nil {
		return acrToken{}, fmt.Errorf("%w: microsoft entra token for %s (provider Azure): %w", errNoIdentity, reg.RegistryStr(), err)
	}
	form := url.Values{"grant_type": {"access_token"}, "service": {reg.RegistryStr()}, "access_token": {entra.Token}}
	u := reg.Scheme() + "://" + reg.RegistryStr() + "/oauth2/exchange"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return acrToken{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
	if err != nil {
		return acrToken{}, fmt.Errorf("ACR token exchange at %s: %w", reg.RegistryStr(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return acrToken{}, fmt.Errorf("ACR token exchange at %s: HTTP %d", reg.RegistryStr(), resp.StatusCode)
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return acrToken{}, fmt.Errorf("ACR token exchange at %s: answer holds no refresh_token", reg.RegistryStr())
	}
	expires := jwtExpiry(out.RefreshToken)
	if expires.IsZero() {
		expires = a.keychain.opts.Clock.Now().Add(acrRefreshTTL)
	}
	return acrToken{refresh: out.RefreshToken, expires: expires}, nil
}

// jwtExpiry reads the exp claim of a JWT without verifying it (the token
// is only passed on to the registry that issued it); zero when unreadable.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0)
}
