package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"k8s.io/utils/clock"
)

// tokenLog remembers the tokens a stand-in issued and counts requests.
type tokenLog struct {
	mu       sync.Mutex
	issued   map[string]bool
	requests int
}

func newTokenLog() *tokenLog { return &tokenLog{issued: map[string]bool{}} }

// issue records a new token named prefix-<n>.
func (l *tokenLog) issue(prefix string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	tok := fmt.Sprintf("%s-%d", prefix, l.requests)
	l.issued[tok] = true
	return tok
}

func (l *tokenLog) has(tok string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.issued[tok]
}

func (l *tokenLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

// metadataStandIn serves the GCE metadata server's token endpoint, only to
// requests carrying Metadata-Flavor: Google, with tokens valid expiresIn.
func metadataStandIn(t *testing.T, log *tokenLog, expiresIn time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		if r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/token" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": log.issue("gcp-token"), "expires_in": int(expiresIn.Seconds()), "token_type": "Bearer",
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// entraStandIn is a Microsoft Entra tenant over TLS: OpenID discovery and
// a token endpoint that grants a client-assertion login for clientID with
// the federated token assertion.
func entraStandIn(t *testing.T, log *tokenLog, tenant, clientID, assertion string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := srv.URL + "/" + tenant
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/" + tenant + "/v2.0/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"issuer": base + "/v2.0",
			})
		case "/" + tenant + "/oauth2/v2.0/token":
			if r.ParseForm() != nil || r.PostForm.Get("client_id") != clientID || r.PostForm.Get("client_assertion") != assertion {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{
				"access_token": log.issue("entra-token"), "expires_in": 3600, "ext_expires_in": 3600, "token_type": "Bearer",
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// workloadIdentity is AKS's workload identity credential pointed at the
// stand-in tenant, as the pod's projected token file would configure it.
func workloadIdentity(t *testing.T, entra *httptest.Server, tenant, clientID, assertion string) azcore.TokenCredential {
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(assertion), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: entra.URL + "/"},
			Transport: entra.Client(),
		},
		ClientID: clientID, TenantID: tenant, TokenFilePath: file, DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// acrExchangeStandIn is ACR's /oauth2/exchange: it trades a token the
// Entra stand-in issued for a refresh token (a JWT expiring 3 h after
// clk's now).
func acrExchangeStandIn(entra, refresh *tokenLog, service *string, clk clock.Clock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "access_token" ||
			r.PostForm.Get("service") != *service || !entra.has(r.PostForm.Get("access_token")) {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		claims, _ := json.Marshal(map[string]any{"exp": clk.Now().Add(3 * time.Hour).Unix()})
		tok := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(claims) + "." + refresh.issue("acr-refresh")
		refresh.mu.Lock()
		refresh.issued[tok] = true
		refresh.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"refresh_token": tok})
	})
}

// acceptOnly admits a registry login for user whose password log issued.
func acceptOnly(user string, log *tokenLog) func(string, string) bool {
	return func(u, p string) bool { return u == user && log.has(p) }
}
