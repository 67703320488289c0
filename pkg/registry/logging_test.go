package registry

import (
	"bytes"
	"flag"
	"net/http"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// setVerbosity sets klog's --v and sends its output to a buffer for the
// test; the previous state is restored afterwards.
func setVerbosity(t *testing.T, v string) *bytes.Buffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	var buf bytes.Buffer
	for name, value := range map[string]string{"v": v, "logtostderr": "false", "alsologtostderr": "false"} {
		if err := fs.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	klog.SetOutput(&buf)
	t.Cleanup(func() {
		klog.Flush()
		_ = fs.Set("v", "0")
		_ = fs.Set("logtostderr", "true")
	})
	return &buf
}

// TestRegistryRequestsAreLoggedAtV4: a request to a real registry through
// LogRequests is logged at --v=4 with method, host, path, status and lane,
// and the line carries neither the Authorization header's value nor the
// query; at --v=3 nothing is logged.
func TestRegistryRequestsAreLoggedAtV4(t *testing.T) {
	reg := startRegistry(t)
	push(t, reg, "team/app", "aaaaaaa", "env-prod")
	client := &http.Client{Transport: LogRequests(http.DefaultTransport)}
	get := func() {
		ctx := WithLane(testContext(t), LaneUrgent)
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, reg.URL()+"/v2/team/app/manifests/env-prod?token=query-s3cret", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer header-s3cret")
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	buf := setVerbosity(t, "3")
	get()
	klog.Flush()
	if strings.Contains(buf.String(), "Registry request") {
		t.Errorf("logged at --v=3:\n%s", buf)
	}
	buf = setVerbosity(t, "4")
	get()
	klog.Flush()
	line := buf.String()
	for _, want := range []string{`"Registry request"`, `method="HEAD"`, `path="/v2/team/app/manifests/env-prod"`,
		`status=200`, `lane="urgent"`, `host="` + strings.TrimPrefix(reg.URL(), "http://") + `"`} {
		if !strings.Contains(line, want) {
			t.Errorf("the line lacks %s:\n%s", want, line)
		}
	}
	for _, secret := range []string{"s3cret", "Bearer"} {
		if strings.Contains(line, secret) {
			t.Errorf("the line carries %q:\n%s", secret, line)
		}
	}
}
