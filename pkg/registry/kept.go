package registry

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// keptLimit bounds the manifests kept for their one read: a new digest's
// provenance is read within seconds of its resolve, so a few dozen cover
// any burst of new digests, and a manifest is a few kilobytes.
const keptLimit = 64

// keptManifests are manifests the version lookup fetched, each kept until
// the one read that wants it (the provenance of the new digest) or until
// newer ones push it out. An entry is handed only to a reader with the
// same client (the same credentials) that fetched it.
type keptManifests struct {
	mu      sync.Mutex
	entries map[string]keptManifest
	order   []string
}

type keptManifest struct {
	client   *remote.Puller
	manifest Manifest
}

// put keeps m under key ("repo@digest"), dropping the oldest beyond the limit.
func (k *keptManifests) put(key string, client *remote.Puller, m Manifest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.entries == nil {
		k.entries = map[string]keptManifest{}
	}
	if _, ok := k.entries[key]; !ok {
		k.order = append(k.order, key)
	}
	k.entries[key] = keptManifest{client: client, manifest: m}
	for len(k.order) > keptLimit {
		delete(k.entries, k.order[0])
		k.order = k.order[1:]
	}
}

// take hands out and forgets the manifest kept under key for client.
func (k *keptManifests) take(key string, client *remote.Puller) (Manifest, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[key]
	if !ok || e.client != client {
		return Manifest{}, false
	}
	delete(k.entries, key)
	k.order = deleteKey(k.order, key)
	return e.manifest, true
}

func deleteKey(order []string, key string) []string {
	for i, o := range order {
		if o == key {
			return append(order[:i], order[i+1:]...)
		}
	}
	return order
}
