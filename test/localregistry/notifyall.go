package localregistry

import (
	"io"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
)

// WithAllNotifications is WithNotifications without any `ignore:`: the
// registry posts every event it emits (blob uploads and existence checks,
// blob and manifest pulls, mounts, deletes, manifest pushes), one event per
// POST, as a Distribution configured from its documentation alone does.
// Delivery is the registry's own: one queue per endpoint, retried (and
// logged as "retrying") while the endpoint refuses.
func WithAllNotifications(url string, headers http.Header) Option {
	return func(s *settings) {
		s.notify = &configuration.Endpoint{Name: "notify", URL: url, Headers: headers, Timeout: 5 * time.Second,
			Threshold: 3, Backoff: time.Second}
	}
}

// WithLog sends the registry's own log (Distribution's logrus output, which
// includes its notification retries) to w instead of discarding it. logrus
// has one global logger: with several registries in one process, the last
// one started decides.
func WithLog(w io.Writer) Option {
	return func(s *settings) { s.log = w }
}
