package registry

import (
	"net/http"
	"time"

	"k8s.io/klog/v2"
)

// LogLevelRequests is the klog verbosity (--v) at which every registry
// request is logged; docs/operations.md lists it with the other levels.
const LogLevelRequests = 4

// LogRequests wraps next so that each registry request is logged at
// --v=4 with its method, host, path, status, duration and lane: an operator
// then sees what a poll or a trigger cost and which lane it waited in.
//
// Only the method, host and path are logged: never headers (Authorization,
// bearer tokens), the URL's user info or its query, which for blob
// redirects to cloud storage carries signatures.
func LogRequests(next http.RoundTripper) http.RoundTripper {
	return requestLog{next: next}
}

type requestLog struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (r requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	v := klog.V(LogLevelRequests)
	if !v.Enabled() {
		return r.next.RoundTrip(req)
	}
	start := time.Now()
	resp, err := r.next.RoundTrip(req)
	kv := []any{"method", req.Method, "host", req.URL.Host, "path", req.URL.Path,
		"lane", LaneOf(req.Context()).String(), "duration", time.Since(start).Round(time.Microsecond)}
	if err != nil {
		v.InfoS("Registry request failed", append(kv, "err", err.Error())...)
		return resp, err
	}
	v.InfoS("Registry request", append(kv, "status", resp.StatusCode)...)
	return resp, nil
}
