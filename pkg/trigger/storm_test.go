package trigger

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// digestPoller records the digests webhooks announce, per CV.
type digestPoller struct {
	mu      sync.Mutex
	digests map[string][]string
}

func (p *digestPoller) TriggerPoll(_ context.Context, namespace, name, _ string) error {
	return p.TriggerPollDigest(context.Background(), namespace, name, "", "")
}

func (p *digestPoller) TriggerPollDigest(_ context.Context, namespace, name, _, digest string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.digests[namespace+"/"+name] = append(p.digests[namespace+"/"+name], digest)
	return nil
}

func (p *digestPoller) announced(key, digest string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.digests[key] {
		if d == digest {
			return true
		}
	}
	return false
}

// tagRecorder is a TagObserver remembering the last digest of each repo:tag.
type tagRecorder struct {
	mu   sync.Mutex
	tags map[string]string
}

func (r *tagRecorder) ObserveTag(repo, tag, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[repo+":"+tag] = digest
}

func (r *tagRecorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.tags {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func (r *tagRecorder) get(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tags[key]
}

// lockedBuffer is the registry's log, written by its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// statusCounter counts the answers the webhook endpoint gave.
type statusCounter struct {
	mu    sync.Mutex
	codes map[int]int
	next  http.Handler
}

func (c *statusCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	c.mu.Lock()
	c.codes[rec.Code]++
	c.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (c *statusCounter) snapshot() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]int{}
	for k, v := range c.codes {
		out[k] = v
	}
	return out
}

// TestRealRegistryNotificationStormGetsOnly202: a real Distribution
// registry posts every event it emits (no `ignore:`) to the webhook with
// the default budget (10 per second). While 40 images are pushed 10 at a
// time to tags and repositories no CV follows, and pulled, the endpoint
// answers nothing but 202, the registry logs no retry, and the push of the
// followed tag that ends the storm still asks for a poll with its digest.
// Before the noise was answered ahead of the limit, such a storm got
// hundreds of 429s, which Distribution retries through one queue.
func TestRealRegistryNotificationStormGetsOnly202(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	const secret = "storm-secret-0123456789"
	poller := &digestPoller{digests: map[string][]string{}}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	lister := cvlisters.NewContainerVersionLister(indexer)
	hooks, err := NewWebhooks(secret, lister, poller, 10)
	if err != nil {
		t.Fatal(err)
	}
	observed := &tagRecorder{tags: map[string]string{}}
	hooks.ObserveTags(observed)
	mux := http.NewServeMux()
	hooks.Register(mux)
	counter := &statusCounter{codes: map[int]int{}, next: mux}
	srv := httptest.NewServer(counter)
	t.Cleanup(srv.Close)

	log := &lockedBuffer{}
	reg := localregistry.StartForTest(t, localregistry.WithAllNotifications(srv.URL+"/v1/webhooks/distribution",
		http.Header{"Authorization": {"Bearer " + secret}}), localregistry.WithLog(log))
	_ = indexer.Add(&cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "app"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: reg.Repo("team/app"), Tag: "env-prod"}})

	storm(t, reg, 40, 10)
	followed, err := reg.Push("team/app", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	// Distribution delivers in order through one queue: once the followed
	// push is announced, every storm event before it has been answered.
	deadline := time.Now().Add(60 * time.Second)
	for !poller.announced("prod/app", followed) {
		if time.Now().After(deadline) {
			t.Fatalf("the followed push %s was never announced; answers %v; registry log:\n%s", followed, counter.snapshot(), tail(log.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	codes := counter.snapshot()
	ignored := hooks.Deliveries("distribution", outcomeIgnored)
	t.Logf("answers by status %v; ignored %d, triggered %d", codes, ignored, hooks.Deliveries("distribution", outcomeTriggered))
	if len(codes) != 1 || codes[http.StatusAccepted] == 0 {
		t.Errorf("answers by status %v, want only 202", codes)
	}
	// 40 pushes of 2 tags each, with their blobs and pulls: the registry
	// really sent its noise, far more than the budget's burst of 11.
	if ignored < 200 {
		t.Errorf("only %d deliveries were noise: the registry did not post its blob and pull events", ignored)
	}
	// Every tag pushed to the followed repository reached the version tag
	// cache with its digest (41: 40 version tags and env-prod); the
	// unfollowed repository's did not.
	if n, other := observed.count(reg.Repo("team/app")+":"), observed.count(reg.Repo("team/other")+":"); n != 41 || other != 0 {
		t.Errorf("observed %d tags of the followed repository (want 41) and %d of the other (want 0)", n, other)
	}
	if got := observed.get(reg.Repo("team/app") + ":env-prod"); got != followed {
		t.Errorf("observed env-prod at %q, want %s", got, followed)
	}
	if n := strings.Count(log.String(), "retrying"); n > 0 {
		t.Errorf("the registry logged %d retries:\n%s", n, tail(log.String()))
	}
}

// storm pushes n images, parallel at a time, each under a version tag of
// the followed repository and a tag of an unfollowed one, and pulls each.
func storm(t *testing.T, reg *localregistry.Registry, n, parallel int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sha := fmt.Sprintf("%07x", 0xa000000+i)
			if _, err := reg.Push("team/app", sha); err != nil {
				errs <- err
				return
			}
			if _, err := reg.Push("team/other", "env-prod"); err != nil {
				errs <- err
				return
			}
			ref, err := name.NewTag(reg.Repo("team/app")+":"+sha, name.Insecure)
			if err == nil {
				_, err = remote.Get(ref, remote.WithTransport(reg.Transport()))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// TestAnnouncedVersionTagCostsOneHead: with the registry layer observing
// the deliveries, the resolve a real Distribution's notification triggers
// finds the version tag pushed with the image without listing the
// repository: the new digest costs the registry one HEAD, counted by the
// registry itself.
func TestAnnouncedVersionTagCostsOneHead(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	const secret = "storm-secret-0123456789"
	poller := &digestPoller{digests: map[string][]string{}}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	hooks, err := NewWebhooks(secret, cvlisters.NewContainerVersionLister(indexer), poller, 10)
	if err != nil {
		t.Fatal(err)
	}
	oci := registry.NewOCI(registry.OCIOptions{Insecure: true, NoRetries: true})
	hooks.ObserveTags(oci)
	mux := http.NewServeMux()
	hooks.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	reg := localregistry.StartForTest(t, localregistry.WithAllNotifications(srv.URL+"/v1/webhooks/distribution",
		http.Header{"Authorization": {"Bearer " + secret}}))
	repo := reg.Repo("team/app")
	_ = indexer.Add(&cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "app"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: repo, Tag: "env-prod"}})
	syntax := regexp.MustCompile(`^[0-9a-f]{7}$`)
	for i := range 42 {
		if _, err := reg.Push("team/app", fmt.Sprintf("%07x", 0xa000000+i)); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := reg.Push("team/app", "b000000", "env-prod")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !poller.announced("prod/app", digest) {
		if time.Now().After(deadline) {
			t.Fatal("the push of env-prod was never announced")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, lists := reg.Requests(), reg.Count("GET", "tags")
	img, err := oci.Resolve(context.Background(), registry.ResolveRequest{Repo: registry.Repo{Name: repo}, Tag: "env-prod", VersionSyntax: syntax})
	if err != nil || img.Digest != digest || img.Version != "b000000" {
		t.Fatalf("resolve: %+v %v, want %s b000000", img, err, digest)
	}
	if n, l := reg.Requests()-before, reg.Count("GET", "tags")-lists; n != 1 || l != 0 {
		t.Errorf("the announced new digest cost %d requests (%d tag lists), want 1 HEAD", n, l)
	}
}
