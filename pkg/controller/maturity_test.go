package controller

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// flakyIndexReader fails its first failures manifest reads, then serves
// an image index for linux/amd64 and linux/arm64.
type flakyIndexReader struct {
	failures int64
	reads    atomic.Int64
}

func (r *flakyIndexReader) Manifest(context.Context, registry.Repo, string) (registry.Manifest, error) {
	if r.reads.Add(1) <= r.failures {
		return registry.Manifest{}, errors.New("503 Service Unavailable")
	}
	entry := func(arch string) v1.Descriptor {
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 100, Digest: v1.Hash{Algorithm: "sha256", Hex: digest1[7:]},
			Platform: &v1.Platform{OS: "linux", Architecture: arch}}
	}
	body, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{entry("amd64"), entry("arm64")}})
	return registry.Manifest{Body: body, Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex}}, err
}

func (r *flakyIndexReader) Blob(context.Context, registry.Repo, string, int64) ([]byte, error) {
	return nil, errors.New("not served")
}

func (r *flakyIndexReader) Referrers(context.Context, registry.Repo, string) ([]v1.Descriptor, error) {
	return nil, nil
}

// TestFailedPlatformReadIsReadAgain: a registry that fails the index read
// refuses the poll that met the failure (PlatformMissing, naming the
// read), and the next poll reads the index again and rolls out, rather than
// holding the digest until the controller restarts.
func TestFailedPlatformReadIsReadAgain(t *testing.T) {
	cv := webCV(polled())
	cv.Spec.PollIntervalSeconds = 60
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, cv, webDeployment(pinned("v1", digest1), true))
	reader := &flakyIndexReader{failures: 1}
	f.c.opts.Platforms = platform.NewCache(reader)
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
		Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64"}}}); err != nil {
		t.Fatal(err)
	}
	f.c.nodes = corelisters.NewNodeLister(nodes)

	// pollUntilRead polls until the background read of the index has
	// answered, then polls once more to act on the answer.
	pollUntilRead := func(reads int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); reader.reads.Load() < reads; {
			if time.Now().After(deadline) {
				t.Fatalf("the index was read %d times, want %d", reader.reads.Load(), reads)
			}
			f.clock.Step(time.Minute)
			f.sync("web")
			time.Sleep(10 * time.Millisecond)
		}
		waitKnown(t, f.c.opts.Platforms, digest2)
		f.cvs.ClearActions()
		f.clock.Step(time.Minute)
		f.sync("web")
	}

	pollUntilRead(1)
	st := f.lastStatus()
	if st.Rollout != nil || st.AvailableDigest != digest2 {
		t.Fatalf("after the failed read: rollout %+v, available %s; want the digest held", st.Rollout, st.AvailableDigest)
	}
	if c := findCondition(st.Conditions, cvv1.ConditionReleaseBlocked); c == nil || c.Reason != cvv1.ReasonPlatformMissing {
		t.Fatalf("after the failed read: condition %+v, want ReleaseBlocked %s", c, cvv1.ReasonPlatformMissing)
	}

	pollUntilRead(2)
	if st := f.lastStatus(); st.Rollout == nil || st.Rollout.Digest != digest2 {
		t.Fatalf("after the index was read again: rollout %+v, want %s rolling out", st.Rollout, digest2)
	}
}

// waitKnown waits for the background read of digest to be stored.
func waitKnown(t *testing.T, c *platform.Cache, digest string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, known := c.Lookup(digest); known {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index of %s was never stored", digest)
		}
	}
}
