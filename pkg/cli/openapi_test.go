package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/cache"

	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/server"
)

// allRoutes builds the controller's real route table with every optional
// route switched on (pprof, trigger keys, webhooks, state backend).
func allRoutes(t *testing.T) *server.Mux {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	secret := filepath.Join(dir, "webhook-secret")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "ci"), []byte("0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("fedcba9876543210fedc"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &runOptions{enablePprof: true, triggerKeysDir: keys, webhookSecret: secret, triggerRate: 10}
	o.stateExport.kind = "local"
	o.stateExport.backend.path = filepath.Join(dir, "state")
	cvs := cvlisters.NewContainerVersionLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}))
	mux, err := o.httpRoutes(metrics.New(), nil, nil, readCaches{cvs: cvs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.stateExport.setup(context.Background(), mux, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	return mux
}

// TestOpenAPIDocumentCoversEveryRoute validates /v1/openapi.json with
// kin-openapi and checks it both ways against the routes the controller
// registers: every route is described and every described operation is
// served.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(server.OpenAPIDocument)
	if err != nil {
		t.Fatalf("parsing the document: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	mux := allRoutes(t)
	var undocumented []string
	for _, pattern := range mux.Patterns() {
		method, path, _ := strings.Cut(pattern, " ")
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			undocumented = append(undocumented, pattern)
		}
	}
	if diff := cmp.Diff([]string(nil), undocumented); diff != "" {
		t.Errorf("routes served but not in the OpenAPI document (-want +got):\n%s", diff)
	}
	var unserved []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			req := httptest.NewRequest(method, strings.ReplaceAll(strings.ReplaceAll(path, "{", "x"), "}", "x"), nil)
			if _, pattern := mux.Handler(req); pattern != method+" "+path {
				unserved = append(unserved, method+" "+path+" (matched "+pattern+")")
			}
		}
	}
	if diff := cmp.Diff([]string(nil), unserved); diff != "" {
		t.Errorf("operations documented but not served (-want +got):\n%s", diff)
	}
}

// TestOpenAPIServed checks GET /v1/openapi.json returns the document.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(allRoutes(t))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if diff := cmp.Diff(string(server.OpenAPIDocument), string(body)); diff != "" {
		t.Errorf("served document (-want +got):\n%s", diff)
	}
}
