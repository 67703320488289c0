package registry

import (
	"net/http"
	"regexp"
	"sync"
	"testing"
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
	if pings := proxy.Count("GET", "other"); pings != 1 {
		t.Errorf("%d pings (GET /v2/) for one repository, want 1", pings)
	}
	if lists := proxy.Count("GET", "tags"); lists != 1 {
		t.Errorf("%d tag listings, want 1", lists)
	}
	if rec.schemes["https"] != 0 {
		t.Errorf("requests by scheme %v: the plain-HTTP host was tried over HTTPS", rec.schemes)
	}
}
