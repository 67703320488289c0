package trigger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
)

const goodKey = "k3y-0123456789abcdef"

// recordingPoller remembers which CVs were triggered.
type recordingPoller struct {
	mu  sync.Mutex
	got []string
}

func (p *recordingPoller) TriggerPoll(_ context.Context, namespace, name, trigger string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, namespace+"/"+name+":"+trigger)
	return nil
}

func newTestHandler(t *testing.T) (*httptest.Server, *recordingPoller) {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, cv := range []*cvv1.ContainerVersion{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web"}, Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/web", Tag: "env-prod"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "stage", Name: "web"}, Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/web", Tag: "env-prod"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "api"}, Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/api", Tag: "env-prod"}},
	} {
		if err := indexer.Add(cv); err != nil {
			t.Fatal(err)
		}
	}
	poller := &recordingPoller{}
	h := New([]APIKey{
		{Name: "ci", Key: goodKey},
		{Name: "stage-only", Key: "stage-0123456789abcdef", Namespaces: []string{"stage"}},
		{Name: "empty", Key: ""},
	}, cvlisters.NewContainerVersionLister(indexer), poller, 1000)
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, poller
}

func post(t *testing.T, url, auth, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/trigger", strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTriggerAuthAndInput(t *testing.T) {
	srv, poller := newTestHandler(t)
	byName := `{"namespace":"prod","name":"web"}`
	cases := []struct {
		name, auth, body string
		want             int
	}{
		{"correct key", "Bearer " + goodKey, byName, http.StatusAccepted},
		{"no header", "", byName, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", byName, http.StatusUnauthorized},
		{"wrong key", "Bearer wrong-0123456789abcdef", byName, http.StatusUnauthorized},
		{"prefix of the key", "Bearer " + goodKey[:len(goodKey)-1], byName, http.StatusUnauthorized},
		{"key with a suffix", "Bearer " + goodKey + "x", byName, http.StatusUnauthorized},
		{"key with a prefix", "Bearer x" + goodKey, byName, http.StatusUnauthorized},
		{"basic scheme", "Basic " + goodKey, byName, http.StatusUnauthorized},
		{"bad JSON", "Bearer " + goodKey, `{"namespace":`, http.StatusBadRequest},
		{"unknown field", "Bearer " + goodKey, `{"namespace":"prod","name":"web","force":true}`, http.StatusBadRequest},
		{"neither CV nor image", "Bearer " + goodKey, `{}`, http.StatusBadRequest},
		{"unknown CV", "Bearer " + goodKey, `{"namespace":"prod","name":"nope"}`, http.StatusNotFound},
		{"scoped key outside its namespace", "Bearer stage-0123456789abcdef", byName, http.StatusForbidden},
		{"oversized body", "Bearer " + goodKey, `{"namespace":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := post(t, srv.URL, tc.auth, tc.body); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	if diff := cmp.Diff([]string{"prod/web:trigger"}, poller.got); diff != "" {
		t.Errorf("polls triggered (-want +got):\n%s", diff)
	}
}

func TestTriggerByImageHonoursScope(t *testing.T) {
	srv, poller := newTestHandler(t)
	if got := post(t, srv.URL, "Bearer stage-0123456789abcdef", `{"image":"reg/web","tag":"env-prod"}`); got != http.StatusAccepted {
		t.Fatalf("status %d", got)
	}
	if diff := cmp.Diff([]string{"stage/web:trigger"}, poller.got); diff != "" {
		t.Errorf("scoped key reached other namespaces (-want +got):\n%s", diff)
	}
}

func TestLoadKeysDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ci", goodKey+"\n")
	write("deployer", "d-0123456789abcdef")
	write("deployer.namespaces", "prod, stage")
	keys, err := LoadKeysDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []APIKey{{Name: "ci", Key: goodKey}, {Name: "deployer", Key: "d-0123456789abcdef", Namespaces: []string{"prod", "stage"}}}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	write("weak", "short")
	if _, err := LoadKeysDir(dir); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Errorf("weak key accepted: %v", err)
	}
}

// clearingPoller also forgets failed versions, as the controller does.
type clearingPoller struct {
	recordingPoller
	cleared []string
}

func (p *clearingPoller) ClearFailed(_ context.Context, namespace, name string) error {
	p.cleared = append(p.cleared, namespace+"/"+name)
	return nil
}

func TestClearFailedNeedsAKey(t *testing.T) {
	poller := &clearingPoller{}
	h := New([]APIKey{{Name: "ci", Key: goodKey}, {Name: "stage", Key: "stage-0123456789abcdef", Namespaces: []string{"stage"}}}, nil, poller, 100)
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	send := func(path, key string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		path, key string
		want      int
	}{
		{"/v1/cv/workloads/web/clear-failed?namespace=prod", "", http.StatusUnauthorized},
		{"/v1/cv/workloads/web/clear-failed?namespace=prod", goodKey + "x", http.StatusUnauthorized},
		{"/v1/cv/workloads/web/clear-failed", goodKey, http.StatusBadRequest},
		{"/v1/cv/workloads/web/clear-failed?namespace=prod", "stage-0123456789abcdef", http.StatusForbidden},
		{"/v1/cv/workloads/web/clear-failed?namespace=prod", goodKey, http.StatusNoContent},
	}
	for _, tc := range cases {
		if got := send(tc.path, tc.key); got != tc.want {
			t.Errorf("POST %s with key %q: %d, want %d", tc.path, tc.key, got, tc.want)
		}
	}
	if diff := cmp.Diff([]string{"prod/web"}, poller.cleared); diff != "" {
		t.Errorf("cleared (-want +got):\n%s", diff)
	}
}

// TestTwentyTriggersBackToBackAreAccepted: at the default --trigger-rate
// of 10/s, 20 triggers sent back to back (a CI job deploying 20 services)
// are all taken; the limiter refuses only past two seconds' worth.
func TestTwentyTriggersBackToBackAreAccepted(t *testing.T) {
	l := newLimiter(10)
	now := time.Now()
	accepted := 0
	for range 25 {
		if l.AllowN(now, 1) {
			accepted++
		}
	}
	if accepted != 21 {
		t.Errorf("%d of 25 back-to-back triggers accepted, want 21 (20 and the one of the burst's plus one)", accepted)
	}
}
