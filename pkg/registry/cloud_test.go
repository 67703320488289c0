package registry

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	clocktesting "k8s.io/utils/clock/testing"

	"cvmanager.dev/cvmanager/test/localregistry"
)

func TestProviderOfHost(t *testing.T) {
	cases := map[string]Provider{
		"europe-west1-docker.pkg.dev":                  ProviderGCP,
		"europe-west1-docker.pkg.dev:443":              ProviderGCP,
		"gcr.io":                                       ProviderGCP,
		"eu.gcr.io":                                    ProviderGCP,
		"mycompany.azurecr.io":                         ProviderAzure,
		"MyCompany.AzureCR.io:5000":                    ProviderAzure,
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com": ProviderAWS,
		"ghcr.io":                                      ProviderGeneric,
		"notgcr.io":                                    ProviderGeneric,
		"pkg.dev.example.com":                          ProviderGeneric,
		"index.docker.io":                              ProviderGeneric,
	}
	got := map[string]Provider{}
	for host := range cases {
		got[host] = ProviderOf(host)
	}
	if diff := cmp.Diff(cases, got); diff != "" {
		t.Errorf("ProviderOf (-want +got):\n%s", diff)
	}
}

func TestParseProvider(t *testing.T) {
	got := map[string]string{}
	for _, in := range []string{"", "gcp", "GCP", "azure", "Aws", "generic", "ecr", "oracle"} {
		p, err := ParseProvider(in)
		got[in] = string(p)
		if err != nil {
			got[in] = "error"
		}
	}
	want := map[string]string{"": "", "gcp": "GCP", "GCP": "GCP", "azure": "Azure", "Aws": "AWS", "generic": "Generic", "ecr": "error", "oracle": "error"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseProvider (-want +got):\n%s", diff)
	}
}

func TestRouterHonoursExplicitProvider(t *testing.T) {
	r := NewRouter(OCIOptions{}, ECROptions{}, HubOptions{})
	const ecrRepo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"
	cases := []struct {
		repo     string
		provider Provider
		want     Registry
	}{
		{ecrRepo, ProviderAuto, r.ECR},
		{ecrRepo, ProviderGeneric, r.OCI},
		{"registry.example.com/app", ProviderAWS, r.ECR},
		{"europe-docker.pkg.dev/p/r/app", ProviderAuto, r.OCI},
		{"nginx", ProviderGCP, r.Hub},
	}
	for _, c := range cases {
		if got := r.route(Repo{Name: c.repo, Auth: Auth{Provider: c.provider}}); got != c.want {
			t.Errorf("route(%s, %q) = %T, want %T", c.repo, c.provider, got, c.want)
		}
	}
}

func TestStaticCredentialsWinOverCloudIdentity(t *testing.T) {
	reg, _ := name.NewRegistry("europe-docker.pkg.dev")
	secret := []byte(`{"auths":{"europe-docker.pkg.dev":{"username":"_json_key","password":"k"}}}`)
	other := []byte(`{"auths":{"ghcr.io":{"username":"u","password":"p"}}}`)
	k := newCloudKeychain(CloudOptions{}, nil)
	cases := []struct {
		name     string
		auth     Auth
		disabled bool   // --no-cloud-identity
		want     string // user name the registry sees, "" for anonymous
	}{
		{"pull secret for the host", Auth{PullSecrets: [][]byte{secret}}, false, "_json_key"},
		{"basic", Auth{Username: "ci", Password: "x"}, false, "ci"},
		{"secret for another host falls to the cloud", Auth{PullSecrets: [][]byte{other}}, false, "cloud-GCP-explicit=false"},
		{"no credentials", Auth{}, false, "cloud-GCP-explicit=false"},
		{"explicit GCP", Auth{Provider: ProviderGCP}, false, "cloud-GCP-explicit=true"},
		{"explicit Generic", Auth{Provider: ProviderGeneric}, false, ""},
		{"cloud identities disabled", Auth{Provider: ProviderGCP}, true, ""},
	}
	for _, c := range cases {
		keychain := k
		if c.disabled {
			keychain = newCloudKeychain(CloudOptions{Disabled: true}, nil)
		}
		auth, key, err := c.auth.authenticator(reg, keychain)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := ""
		if _, ok := auth.(cloudAuth); ok {
			got = strings.TrimPrefix(key, "https://europe-docker.pkg.dev|")
		} else if cfg, _ := auth.Authorization(); cfg != nil {
			got = cfg.Username
		}
		if got != c.want {
			t.Errorf("%s: login %q, want %q", c.name, got, c.want)
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	cases := map[string]int64{
		"eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.sig": 1700000000,
		"not-a-jwt": 0,
		"a.!!!.c":   0,
		"a.e30.c":   0, // {} has no exp
	}
	for tok, want := range cases {
		got := jwtExpiry(tok)
		if (want == 0) != got.IsZero() || (want != 0 && got.Unix() != want) {
			t.Errorf("jwtExpiry(%q) = %v, want unix %d", tok, got, want)
		}
	}
}

// TestGoogleWorkloadIdentityLogsInAndCachesTheToken: a registry named like
// Artifact Registry, whose token server admits only the metadata
// stand-in's tokens as user oauth2accesstoken. Six repositories (six
// registry logins) cost one metadata request; once the token is within
// RefreshAhead of expiry the next login fetches a new one.
func TestGoogleWorkloadIdentityLogsInAndCachesTheToken(t *testing.T) {
	// The token is fresh for `fresh` (its life less RefreshAhead): long
	// enough for 12 polls on a loaded 2-core machine, which are then
	// asserted to fit, never skipped.
	const ahead, fresh = time.Minute, 15 * time.Second
	meta := newTokenLog()
	md := metadataStandIn(t, meta, ahead+fresh)
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir()) // no gcloud credentials file
	t.Setenv("HOME", t.TempDir())
	reg := startRegistry(t, localregistry.WithHostName("europe-docker.pkg.dev"),
		localregistry.WithTokenAuth("pusher", "push-secret", 0),
		localregistry.WithTokenLogins(acceptOnly("oauth2accesstoken", meta)))
	for i := range 7 {
		push(t, reg, fmt.Sprintf("proj/repo/app%d", i), "v1")
	}
	ctx := testContext(t)
	generic := NewOCI(OCIOptions{Transport: reg.Transport(), InsecureHosts: []string{reg.Host}, NoRetries: true})
	if _, err := generic.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo("proj/repo/app0"), Auth: Auth{Provider: ProviderGeneric}}, Tag: "v1"}); err == nil {
		t.Fatal("anonymous resolve succeeded; the registry must require the cloud token")
	}
	o := NewOCI(OCIOptions{Transport: reg.Transport(), InsecureHosts: []string{reg.Host}, NoRetries: true,
		Cloud: CloudOptions{RefreshAhead: ahead}})
	resolve := func(i int) {
		t.Helper()
		if _, err := o.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo(fmt.Sprintf("proj/repo/app%d", i))}, Tag: "v1"}); err != nil {
			t.Fatalf("resolve app%d: %v", i, err)
		}
	}
	start := time.Now() // the cloud token is issued after this
	resolve(0)
	issued := time.Now() // and before this
	resolve(0)
	for i := 1; i < 6; i++ {
		resolve(i)
		resolve(i)
	}
	if took := time.Since(start); took >= fresh {
		t.Fatalf("12 polls took %s, longer than the %s the token stays fresh: the caching below cannot be told apart from expiry", took, fresh)
	}
	got := []int{meta.count(), reg.Tokens.Issued("")}
	if diff := cmp.Diff([]int{1, 6 + 7}, got); diff != "" { // 7 push logins, 6 cloud logins
		t.Errorf("[metadata requests, registry tokens] after 12 polls of 6 repos (-want +got):\n%s", diff)
	}
	time.Sleep(time.Until(issued.Add(fresh + 500*time.Millisecond)))
	resolve(6)
	if got := meta.count(); got != 2 {
		t.Errorf("metadata requests after the token came within %v of expiry = %d, want 2", ahead, got)
	}
}

// TestAzureWorkloadIdentityExchangesForACRRefreshToken: AKS workload
// identity against a stand-in Entra tenant, the token traded at the
// registry's /oauth2/exchange stand-in; the registry's token server admits
// only the exchanged refresh tokens with ACR's null-GUID user. Five logins
// cost one Entra token and one exchange, until the refresh token is within
// RefreshAhead of expiry; then one exchange more, the Entra token still
// cached by azidentity.
func TestAzureWorkloadIdentityExchangesForACRRefreshToken(t *testing.T) {
	const tenant, clientID, assertion = "tenant-1", "client-1", "projected-sa-token"
	entra, refresh := newTokenLog(), newTokenLog()
	srv := entraStandIn(t, entra, tenant, clientID, assertion)
	service := ""
	clk := clocktesting.NewFakeClock(time.Now())
	reg := startRegistry(t, localregistry.WithHostName("cvmtest.azurecr.io"),
		localregistry.WithTokenAuth("pusher", "push-secret", 0),
		localregistry.WithTokenLogins(acceptOnly(acrUser, refresh)),
		localregistry.WithHandler("/oauth2/exchange", acrExchangeStandIn(entra, refresh, &service, clk)))
	service = reg.Host
	for i := range 6 {
		push(t, reg, fmt.Sprintf("team/app%d", i), "v1")
	}
	o := NewOCI(OCIOptions{Transport: reg.Transport(), InsecureHosts: []string{reg.Host}, NoRetries: true,
		Cloud: CloudOptions{AzureCredential: workloadIdentity(t, srv, tenant, clientID, assertion), Clock: clk}})
	ctx := testContext(t)
	for i := range 5 {
		if _, err := o.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo(fmt.Sprintf("team/app%d", i))}, Tag: "v1"}); err != nil {
			t.Fatalf("resolve app%d: %v", i, err)
		}
	}
	if diff := cmp.Diff([]int{1, 1}, []int{entra.count(), refresh.count()}); diff != "" {
		t.Errorf("[entra tokens, exchanges] after 5 logins (-want +got):\n%s", diff)
	}
	clk.Step(2*time.Hour + 56*time.Minute) // the refresh token's 3 h, less RefreshAhead's 5 min
	if _, err := o.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo("team/app5")}, Tag: "v1"}); err != nil {
		t.Fatalf("resolve after refresh: %v", err)
	}
	if diff := cmp.Diff([]int{1, 2}, []int{entra.count(), refresh.count()}); diff != "" {
		t.Errorf("[entra tokens, exchanges] after the refresh token came near expiry (-want +got):\n%s", diff)
	}
}

// TestHostChosenProviderFallsBackToAnonymousWithoutIdentity: a public
// image on a pkg.dev-named registry still resolves where no Google
// credentials exist, unless spec.provider asks for GCP explicitly.
func TestHostChosenProviderFallsBackToAnonymousWithoutIdentity(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	reg := startRegistry(t, localregistry.WithHostName("us-docker.pkg.dev"), localregistry.WithTokenAuth("pusher", "push-secret", 0),
		localregistry.WithTokenLogins(func(user, _ string) bool { return user == "" }))
	push(t, reg, "public/app", "v1")
	o := NewOCI(OCIOptions{Transport: reg.Transport(), InsecureHosts: []string{reg.Host}, NoRetries: true})
	ctx := testContext(t)
	cases := []struct {
		provider Provider
		wantErr  string
	}{
		{ProviderAuto, ""},
		{ProviderGCP, "google credentials (provider GCP)"},
	}
	for _, c := range cases {
		_, err := o.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo("public/app"), Auth: Auth{Provider: c.provider}}, Tag: "v1"})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (c.wantErr == "") != (got == "") || !strings.Contains(got, c.wantErr) {
			t.Errorf("provider %q: error %q, want one containing %q", c.provider, got, c.wantErr)
		}
	}
}

// TestGoogleApplicationCredentialsFile: a service-account key file named by
// GOOGLE_APPLICATION_CREDENTIALS, its token_uri a stand-in that grants a
// JWT-bearer assertion; the registry admits only that token.
func TestGoogleApplicationCredentialsFile(t *testing.T) {
	log := newTokenLog()
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.PostForm.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": log.issue("sa-token"), "expires_in": 3600, "token_type": "Bearer"})
	}))
	t.Cleanup(tokens.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	file := filepath.Join(t.TempDir(), "sa.json")
	raw, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj", "private_key_id": "k1", "client_email": "cvm@proj.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": tokens.URL + "/token",
	})
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	reg := startRegistry(t, localregistry.WithHostName("gcr.io"), localregistry.WithTokenAuth("pusher", "push-secret", 0),
		localregistry.WithTokenLogins(acceptOnly("oauth2accesstoken", log)))
	push(t, reg, "proj/app", "v1")
	push(t, reg, "proj/web", "v1")
	o := NewOCI(OCIOptions{Transport: reg.Transport(), InsecureHosts: []string{reg.Host}, NoRetries: true})
	ctx := testContext(t)
	for _, path := range []string{"proj/app", "proj/web", "proj/app"} {
		if _, err := o.Resolve(ctx, ResolveRequest{Repo: Repo{Name: reg.Repo(path)}, Tag: "v1"}); err != nil {
			t.Fatalf("resolve %s: %v", path, err)
		}
	}
	if got := log.count(); got != 1 {
		t.Errorf("token requests for 3 polls of 2 repositories = %d, want 1", got)
	}
}
