package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2"
)

// recorder is a receiver that fails its first failures calls with 503 and
// records every call it gets.
type recorder struct {
	mu       sync.Mutex
	failures int
	calls    []call
	done     chan struct{}
}

type call struct {
	Path, Auth, ContentType string
	Body                    []byte
}

func newRecorder(failures int) (*recorder, *httptest.Server) {
	rec := &recorder{failures: failures, done: make(chan struct{}, 16)}
	return rec, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.calls = append(rec.calls, call{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		fail := len(rec.calls) <= rec.failures
		rec.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			w.WriteHeader(http.StatusOK)
		}
		rec.done <- struct{}{}
	}))
}

func (r *recorder) wait(t *testing.T, n int) []call {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d calls", i, n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// captureLogs sends klog's output to a buffer for the test's duration.
func captureLogs(t *testing.T) *syncBuffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	buf := &syncBuffer{}
	klog.SetOutput(buf)
	t.Cleanup(func() { klog.Flush(); _ = fs.Set("logtostderr", "true") })
	return buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func fastNotifier(t *testing.T) *Notifier {
	n := New()
	n.backoff = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n.Run(ctx, 1)
	return n
}

var event = Event{Kind: Succeeded, Namespace: "shop", Name: "web", Image: "reg.example/shop/web", Version: "abc1234",
	Digest: "sha256:0123", From: "9f8e7d6", Time: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}

// TestDeliveryPayloadsAndRetries posts to a recorder that fails twice:
// the third attempt delivers, every attempt carries the same payload, and
// the token travels only in the Authorization header, never in the logs.
// That the delivered event is not posted again is shown by a marker event
// queued behind it: the notifier's one worker takes the marker only after
// the first delivery's attempts have ended, so any further attempt would
// reach the recorder before the marker.
func TestDeliveryPayloadsAndRetries(t *testing.T) {
	const token = "glsa_SECRET-grafana-token"
	tests := []struct {
		name     string
		receiver func(url string) Receiver
		path     string
		auth     string
		want     any
	}{{
		name:     "Grafana annotation",
		receiver: func(url string) Receiver { return Receiver{Type: TypeGrafana, URL: url, Token: []byte(token)} },
		path:     GrafanaAnnotationsPath,
		auth:     "Bearer " + token,
		want: map[string]any{"time": float64(event.Time.UnixMilli()),
			"tags": []any{"cvmanager", "Succeeded", "namespace:shop", "cv:web", "version:abc1234"},
			"text": "Succeeded shop/web: reg.example/shop/web abc1234 (from 9f8e7d6)"},
	}, {
		name: "Slack incoming webhook",
		receiver: func(url string) Receiver {
			return Receiver{Type: TypeSlack, URL: url + "/services/T0/B0/SECRETslackpath"}
		},
		path: "/services/T0/B0/SECRETslackpath",
		want: map[string]any{"text": ":white_check_mark: *Succeeded* shop/web: reg.example/shop/web `abc1234`"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := captureLogs(t)
			rec, srv := newRecorder(2)
			defer srv.Close()
			n := fastNotifier(t)
			n.Enqueue(tt.receiver(srv.URL), event)
			n.Enqueue(Receiver{Type: TypeWebhook, URL: srv.URL + "/marker"}, event)
			// The marker may already be recorded when the third attempt's
			// signal arrives (its answer frees the worker first): judge the
			// first three calls, the marker after them below.
			calls := rec.wait(t, 3)[:3]
			for i, c := range calls {
				var got any
				if err := json.Unmarshal(c.Body, &got); err != nil {
					t.Fatalf("attempt %d: body %q: %v", i+1, c.Body, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("attempt %d payload (-want +got):\n%s", i+1, diff)
				}
				if c.Path != tt.path || c.Auth != tt.auth || c.ContentType != "application/json" {
					t.Errorf("attempt %d: path %q auth %q type %q", i+1, c.Path, c.Auth, c.ContentType)
				}
			}
			if all := rec.wait(t, 1); len(all) != 4 || all[3].Path != "/marker" {
				t.Errorf("delivered more than once: call %d went to %q, want the marker after 3 attempts", len(all), all[len(all)-1].Path)
			}
			klog.Flush()
			if l := logs.String(); strings.Contains(l, "SECRET") {
				t.Errorf("logs hold a secret:\n%s", l)
			}
		})
	}
}

// TestUndeliveredLogsNoSecret lets every attempt fail, against a dead
// receiver and one answering 500: the failure is logged once, without the
// URL (Slack's holds its secret) or the token.
func TestUndeliveredLogsNoSecret(t *testing.T) {
	rec, srv := newRecorder(100)
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	for _, r := range []Receiver{
		{Type: TypeSlack, URL: srv.URL + "/services/T0/B0/SECRETslackpath"},
		{Type: TypeGrafana, URL: deadURL + "/SECRETbase", Token: []byte("glsa_SECRET")},
	} {
		logs := captureLogs(t)
		n := fastNotifier(t)
		n.Enqueue(r, event)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), "Notification not delivered") && time.Now().Before(deadline) {
			klog.Flush()
			time.Sleep(20 * time.Millisecond)
		}
		l := logs.String()
		if !strings.Contains(l, "Notification not delivered") || !strings.Contains(l, "type=\""+r.Type+"\"") {
			t.Errorf("%s: the failure is not logged:\n%s", r.Type, l)
		}
		if strings.Contains(l, "SECRET") {
			t.Errorf("%s: logs hold a secret:\n%s", r.Type, l)
		}
	}
	if got := len(rec.wait(t, 4)); got != 4 {
		t.Errorf("Slack attempts: %d, want 4", got)
	}
}

// TestGrafanaEndpoint adds the annotations path to a base URL only.
func TestGrafanaEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://g.example":                  "https://g.example/api/annotations",
		"https://g.example/grafana/":         "https://g.example/grafana/api/annotations",
		"https://g.example/api/annotations":  "https://g.example/api/annotations",
		"https://g.example/api/annotations/": "https://g.example/api/annotations/",
	} {
		if got := endpoint(Receiver{Type: TypeGrafana, URL: in}); got != want {
			t.Errorf("endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWebhookPayloadCarriesTheRolloutID: the JSON a Webhook receiver gets
// keeps every key it had and adds rolloutID, which an event of no rollout
// (Blocked) leaves out.
func TestWebhookPayloadCarriesTheRolloutID(t *testing.T) {
	rec, srv := newRecorder(0)
	defer srv.Close()
	n := fastNotifier(t)
	withID := event
	withID.RolloutID = "0c1a54df852a"
	blocked := event
	blocked.Kind = Blocked
	n.Enqueue(Receiver{Type: TypeWebhook, URL: srv.URL}, withID)
	n.Enqueue(Receiver{Type: TypeWebhook, URL: srv.URL}, blocked)
	calls := rec.wait(t, 2)
	want := map[string]map[string]any{
		Succeeded: {"event": "Succeeded", "namespace": "shop", "containerVersion": "web", "image": "reg.example/shop/web",
			"version": "abc1234", "digest": "sha256:0123", "fromVersion": "9f8e7d6", "time": "2026-11-29T10:00:00Z",
			"rolloutID": "0c1a54df852a"},
		Blocked: {"event": "Blocked", "namespace": "shop", "containerVersion": "web", "image": "reg.example/shop/web",
			"version": "abc1234", "digest": "sha256:0123", "fromVersion": "9f8e7d6", "time": "2026-11-29T10:00:00Z"},
	}
	for _, c := range calls {
		var got map[string]any
		if err := json.Unmarshal(c.Body, &got); err != nil {
			t.Fatalf("body %q: %v", c.Body, err)
		}
		kind, _ := got["event"].(string)
		if diff := cmp.Diff(want[kind], got); diff != "" {
			t.Errorf("%s payload (-want +got):\n%s", kind, diff)
		}
	}
}
