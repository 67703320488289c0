package localregistry

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// notice is the part of a Distribution notification the test reads.
type notice struct {
	Action, Tag, Digest, Host, MediaType, Auth string
}

// TestNotificationsAnnounceManifestPushesOnly: the registry's own
// notifications reach the endpoint with its headers, one manifest push per
// tag, naming the host the pusher used; pulls and blobs announce nothing.
func TestNotificationsAnnounceManifestPushesOnly(t *testing.T) {
	var mu sync.Mutex
	var got []notice
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Events []struct {
				Action  string
				Target  struct{ MediaType, Tag, Digest string }
				Request struct{ Host string }
			}
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("notification body %q: %v", body, err)
		}
		mu.Lock()
		for _, e := range env.Events {
			got = append(got, notice{e.Action, e.Target.Tag, e.Target.Digest, e.Request.Host, e.Target.MediaType, r.Header.Get("Authorization")})
		}
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	reg := StartForTest(t, WithNotifications(hook.URL, http.Header{"Authorization": {"Bearer s3cret"}}))
	d1, err := reg.Push("team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := reg.ref("team/app", "v1")
	if _, err := remote.Get(ref, reg.remoteOptions()...); err != nil { // a pull: no notification
		t.Fatal(err)
	}
	d2, err := reg.Push("team/app", "v2")
	if err != nil {
		t.Fatal(err)
	}
	// A third push is the barrier: the registry delivers an endpoint's
	// notifications one at a time, in order, so once v3's has arrived
	// anything the pull had caused would have arrived before it.
	d3, err := reg.Push("team/app", "v3")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		last := len(got) > 0 && got[len(got)-1].Tag == "v3"
		mu.Unlock()
		if last || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	manifest := "application/vnd.docker.distribution.manifest.v2+json"
	want := []notice{
		{"push", "v1", d1, reg.Host, manifest, "Bearer s3cret"},
		{"push", "v2", d2, reg.Host, manifest, "Bearer s3cret"},
		{"push", "v3", d3, reg.Host, manifest, "Bearer s3cret"},
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}
