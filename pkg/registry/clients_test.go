package registry

import (
	"net/http"
	"regexp"
	"sync"
	"testing"

	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// schemeRecorder records the scheme of every request it carries.
type schemeRecorder struct {
	mu      sync.Mutex
	schemes map[string]int
}

func (s *schemeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.schemes[req.URL.Scheme]++
	s.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestOneClientPerRepository: a new digest whose version tag must be
// looked up (HEAD, tag list, HEAD of the new version tag) pings the
// registry once, not once for the puller and once for the tag listing;
// and a host configured as plain HTTP is never tried over HTTPS first.
func TestOneClientPerRepository(t *testing.T) {
	reg := startRegistry(t)
	proxy := startProxy(t, reg)
	d := push(t, reg, "team/app", "1111111", "env-prod")
	rec := &schemeRecorder{schemes: map[string]int{}}
	oci := NewOCI(OCIOptions{Transport: rec, InsecureHosts: []string{proxy.Host}, NoRetries: true})
	req := ResolveRequest{Repo: Repo{Name: proxy.Repo("team/app")}, Tag: "env-prod", VersionSyntax: regexp.MustCompile(`[0-9]{7}`)}

	img, err := oci.Resolve(testContext(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d || img.Version != "1111111" {
		t.Fatalf("resolved %s %q, want %s 1111111", img.Digest, img.Version, d)
	}
	if pings := pingsAt(proxy); pings != 1 {
		t.Errorf("%d pings (GET /v2/) for one repository, want 1", pings)
	}
	if lists := proxy.Count("GET", "tags"); lists != 1 {
		t.Errorf("%d tag listings, want 1", lists)
	}
	if rec.schemes["https"] != 0 {
		t.Errorf("requests by scheme %v: the plain-HTTP host was tried over HTTPS on the wire", rec.schemes)
	}
}

// TestOnePingPerRegistry: against a registry with token auth, the clients
// of two repositories ping the registry once between them (the challenge
// is the registry's) and still fetch a token each, for their own scope.
func TestOnePingPerRegistry(t *testing.T) {
	reg := startRegistry(t, localregistry.WithTokenAuth("ci", "s3cret", 0))
	proxy := startProxy(t, reg)
	digests := map[string]string{"team/a": push(t, reg, "team/a", "env-prod"), "team/b": push(t, reg, "team/b", "env-prod")}
	issuedByPush := reg.Tokens.Issued("")
	oci := insecureOCI()
	for _, repo := range []string{"team/a", "team/b"} {
		img, err := oci.Resolve(testContext(t), ResolveRequest{Repo: Repo{Name: proxy.Repo(repo), Auth: Auth{Username: "ci", Password: "s3cret"}}, Tag: "env-prod"})
		if err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		if img.Digest != digests[repo] {
			t.Errorf("%s resolved to %s, want %s", repo, img.Digest, digests[repo])
		}
	}
	if pings := pingsAt(proxy); pings != 1 {
		t.Errorf("%d pings for two repositories of one registry, want 1", pings)
	}
	if n := reg.Tokens.Issued("") - issuedByPush; n != 2 {
		t.Errorf("%d tokens for two repositories, want 2 (one per scope)", n)
	}
}

// pingsAt counts the GET /v2/ requests the proxy passed on.
func pingsAt(proxy *faultproxy.Proxy) int {
	n := 0
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodGet && r.Path == "/v2/" {
			n++
		}
	}
	return n
}
