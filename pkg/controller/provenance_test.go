package controller

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// memoryReader serves one image for every digest: a manifest annotated
// with a revision and a config labelled with a source. It counts reads.
type memoryReader struct{ reads atomic.Int64 }

const configDigest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

func (m *memoryReader) Manifest(context.Context, registry.Repo, string) (registry.Manifest, error) {
	m.reads.Add(1)
	body, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config:      v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: v1.Hash{Algorithm: "sha256", Hex: configDigest[7:]}},
		Annotations: map[string]string{provenance.RevisionKey: "abc123"}})
	return registry.Manifest{Body: body, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1}}, err
}

func (m *memoryReader) Blob(context.Context, registry.Repo, string, int64) ([]byte, error) {
	m.reads.Add(1)
	return []byte(`{"config":{"Labels":{"org.opencontainers.image.source":"https://git.example/web"}}}`), nil
}

func (m *memoryReader) Referrers(context.Context, registry.Repo, string) ([]v1.Descriptor, error) {
	return nil, nil
}

// readInto reads digests into a new cache and waits for them.
func readInto(t *testing.T, reader *memoryReader, digests ...string) *provenance.Cache {
	t.Helper()
	cache := provenance.NewCache(reader)
	done := make(chan struct{}, len(digests))
	for _, d := range digests {
		cache.Request(context.Background(), registry.Repo{Name: repo}, d, func() { done <- struct{}{} })
	}
	for range digests {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("read not finished")
		}
	}
	return cache
}

// TestProvenanceFromTheCacheOnly: a sync writes provenance the cache has
// read and status lacks, once; it never reads the registry itself, and a
// CV whose provenance is written, or unread, costs no write. During a
// rollout it waits for the rollout's own next status write.
func TestProvenanceFromTheCacheOnly(t *testing.T) {
	read := &cvv1.Provenance{Revision: "abc123", Source: "https://git.example/web"}
	withProvenance := polled()
	withProvenance.Provenance = read
	rolling := rollingOut(t0.Add(-10 * time.Second))
	rolling.LastPolled = polled().LastPolled
	for _, tc := range []struct {
		name       string
		status     cvv1.ContainerVersionStatus
		cached     []string
		wantCV     []string
		wantStatus *cvv1.Provenance // status.provenance written
		wantRoll   *cvv1.Provenance // status.rollout.provenance written
		ready      bool             // the rollout's workload is ready
	}{{
		name: "running version read: written once", status: polled(), cached: []string{digest1},
		wantCV: []string{"update containerversions/status web"}, wantStatus: read,
	}, {
		name: "already written: nothing to do", status: withProvenance, cached: []string{digest1},
	}, {
		name: "never read (steady state after a restart): no read, no write", status: polled(),
	}, {
		name:   "rollout's digest read: no write of its own, it rides along with the rollout's next write",
		status: rolling, cached: []string{digest2},
	}, {
		name: "rollout's digest read and the rollout finishes: written with the finish", status: rolling, cached: []string{digest2},
		ready: true, wantCV: []string{"update containerversions/status web"}, wantStatus: read,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			workload := webDeployment(pinned("v1", digest1), true) // at rest: no drift, no rollout
			if tc.status.Rollout != nil {
				workload = webDeployment(pinned("v2", digest2), tc.ready) // under way
			}
			f := newFixture(t, poller.ResolvedImage{Digest: digest1, Version: "v1"}, webCV(tc.status), workload)
			reader := &memoryReader{}
			f.c.opts.Provenance = readInto(t, reader, tc.cached...)
			readsBefore := reader.reads.Load()
			f.sync("web")
			if diff := cmp.Diff(tc.wantCV, actions(f.cvs)); diff != "" {
				t.Errorf("CV actions (-want +got):\n%s", diff)
			}
			if n := reader.reads.Load() - readsBefore; n != 0 {
				t.Errorf("the sync read the registry %d times", n)
			}
			if tc.wantCV == nil {
				return
			}
			st := f.lastStatus()
			var gotRoll *cvv1.Provenance
			if st.Rollout != nil {
				gotRoll = st.Rollout.Provenance
			}
			if diff := cmp.Diff(tc.wantStatus, st.Provenance); diff != "" {
				t.Errorf("status.provenance (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRoll, gotRoll); diff != "" {
				t.Errorf("status.rollout.provenance (-want +got):\n%s", diff)
			}
		})
	}
}
