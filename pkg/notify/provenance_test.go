package notify

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestProvenanceInPayloads: every receiver type carries the revision and
// source the image was built from; Slack's markup characters in them are
// escaped so a label cannot forge a link or a mention.
func TestProvenanceInPayloads(t *testing.T) {
	e := event
	e.Revision, e.Source = "0123456789abcdef", "https://git.example/shop/web?<!channel>&x"
	tests := []struct {
		name     string
		receiver func(url string) Receiver
		want     any
	}{{
		name:     "Webhook JSON",
		receiver: func(url string) Receiver { return Receiver{Type: TypeWebhook, URL: url} },
		want: map[string]any{"event": "Succeeded", "namespace": "shop", "containerVersion": "web", "image": "reg.example/shop/web",
			"version": "abc1234", "digest": "sha256:0123", "fromVersion": "9f8e7d6", "time": "2026-11-29T10:00:00Z",
			"revision": "0123456789abcdef", "source": "https://git.example/shop/web?<!channel>&x"},
	}, {
		name:     "Slack text",
		receiver: func(url string) Receiver { return Receiver{Type: TypeSlack, URL: url} },
		want: map[string]any{"text": ":white_check_mark: *Succeeded* shop/web: reg.example/shop/web `abc1234`" +
			" (built from 0123456789abcdef of https://git.example/shop/web?&lt;!channel&gt;&amp;x)"},
	}, {
		name:     "Grafana annotation text",
		receiver: func(url string) Receiver { return Receiver{Type: TypeGrafana, URL: url, Token: []byte("t")} },
		want: map[string]any{"time": float64(e.Time.UnixMilli()),
			"tags": []any{"cvmanager", "Succeeded", "namespace:shop", "cv:web", "version:abc1234"},
			"text": "Succeeded shop/web: reg.example/shop/web abc1234 (from 9f8e7d6) (built from 0123456789abcdef of https://git.example/shop/web?<!channel>&x)"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, srv := newRecorder(0)
			defer srv.Close()
			fastNotifier(t).Enqueue(tt.receiver(srv.URL), e)
			calls := rec.wait(t, 1)
			var got any
			if err := json.Unmarshal(calls[0].Body, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuiltFrom(t *testing.T) {
	plain := func(s string) string { return s }
	for _, tt := range []struct{ revision, source, want string }{
		{"", "", ""},
		{"abc", "", " (built from abc)"},
		{"", "https://git.example/a", " (built from https://git.example/a)"},
		{"abc", "https://git.example/a", " (built from abc of https://git.example/a)"},
	} {
		if got := builtFrom(Event{Revision: tt.revision, Source: tt.source}, plain); got != tt.want {
			t.Errorf("builtFrom(%q, %q) = %q, want %q", tt.revision, tt.source, got, tt.want)
		}
	}
}
