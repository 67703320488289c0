package controller

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// TestNotificationsCarryTheRolloutID: the notification a rollout's finish
// sends names the rollout (status.rollout.id), so a receiver can drop a
// delivery it already has.
func TestNotificationsCarryTheRolloutID(t *testing.T) {
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies <- body
	}))
	defer srv.Close()
	n := notify.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Run(ctx, 1)
	st := rollingOut(t0.Add(-10 * time.Second))
	st.Rollout.ID = "0c1a54df852a"
	f := newFixtureOpts(t, poller.ResolvedImage{}, []runtime.Object{webCV(st)}, func(o *Options) {
		o.Notifier = n
		o.DefaultNotifications = []notify.Route{{Receiver: notify.Receiver{Type: notify.TypeWebhook, URL: srv.URL}}}
	}, webDeployment(pinned("v2", digest2), true))
	f.sync("web")
	select {
	case body := <-bodies:
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("payload %q: %v", body, err)
		}
		if got["event"] != notify.Succeeded || got["rolloutID"] != "0c1a54df852a" || got["digest"] != digest2 {
			t.Errorf("payload %s: want event Succeeded, rolloutID 0c1a54df852a, digest %s", body, digest2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification sent")
	}
}
