package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// TestJSONLogsAreStructured parses run's own flags (--v=4
// --logging-format=json), logs the way the controller does, and checks
// every line is one JSON object with the structured keys as fields, the
// verbosity as v, and the API requests of --v=4.
func TestJSONLogsAreStructured(t *testing.T) {
	cmd := newRunCommand(&KubeFlags{})
	if err := cmd.ParseFlags([]string{"--v=4", "--logging-format=json"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		klog.ClearLogger()
		_ = cmd.Flags().Set("v", "0")
	})
	var buf bytes.Buffer
	o := &runOptions{}
	o.logging.format, _ = cmd.Flags().GetString("logging-format")
	if err := o.logging.apply(&buf); err != nil {
		t.Fatal(err)
	}

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusConflict) }))
	defer api.Close()
	resp, err := (&http.Client{Transport: requestLogger{next: http.DefaultTransport}}).Get(api.URL + "/apis/cvmanager.dev/v1alpha1/namespaces/shop/containerversions/web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cv := klog.KRef("shop", "web")
	klog.InfoS("Rollout succeeded", "cv", cv, "rolloutID", "r-1", "digest", "sha256:abc")
	klog.V(2).InfoS("State exported", "cvs", 3)
	klog.V(5).InfoS("Not shown at --v=4")
	klog.ErrorS(errors.New("boom"), "Sync failed", "cv", cv)
	klog.Flush()

	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4 (request, rollout, v=2, error; not v=5):\n%s", len(lines), buf.String())
	}
	req, rollout, v2, failed := lines[0], lines[1], lines[2], lines[3]
	if req["msg"] != "Kubernetes API request" || req["verb"] != "GET" || req["status"] != float64(409) ||
		!strings.HasSuffix(req["path"].(string), "/containerversions/web") || req["v"] != float64(4) {
		t.Errorf("request line %v", req)
	}
	ref, _ := rollout["cv"].(map[string]any)
	if rollout["msg"] != "Rollout succeeded" || ref["name"] != "web" || ref["namespace"] != "shop" ||
		rollout["rolloutID"] != "r-1" || rollout["digest"] != "sha256:abc" || rollout["v"] != float64(0) {
		t.Errorf("rollout line %v", rollout)
	}
	if v2["v"] != float64(2) || v2["cvs"] != float64(3) {
		t.Errorf("v=2 line %v", v2)
	}
	if failed["level"] != "error" || failed["err"] != "boom" || failed["msg"] != "Sync failed" {
		t.Errorf("error line %v", failed)
	}
}

func TestUnknownLoggingFormat(t *testing.T) {
	l := loggingFlags{format: "yaml"}
	if err := l.apply(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "use text or json") {
		t.Fatalf("error %v", err)
	}
}
