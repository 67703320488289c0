package controller

import (
	"sync"
	"time"

	"cvmanager.dev/cvmanager/pkg/rollout"
)

// patchExpectations remember the image patches this controller made whose
// result its workload cache has not shown yet (the Deployment controller's
// "expectations"). A sync that runs before the cache catches up (the echo
// of the status write arrives first) plans the same patch again from the
// old object; the patch would be harmless but is a write the rollout does
// not need. It is skipped while the cache still holds the very object
// version that was patched, for a short while at most.
type patchExpectations struct {
	mu  sync.Mutex
	set map[string]expectedPatch
}

type expectedPatch struct {
	image, resourceVersion string
	at                     time.Time
}

// expectationTTL bounds how long an unseen patch is trusted: a cache
// that has not caught up by then is not waited for.
const expectationTTL = 30 * time.Second

func patchKey(a rollout.PatchImage) string {
	return a.Workload.Namespace() + "/" + a.Workload.Key() + "/" + a.Container
}

// pending drops the patches of actions already made and not yet seen in
// the cache.
func (p *patchExpectations) pending(actions []rollout.Action, now time.Time) []rollout.Action {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := actions[:0:0]
	for _, a := range actions {
		if patch, ok := a.(rollout.PatchImage); ok {
			e, seen := p.set[patchKey(patch)]
			if seen && e.image == patch.Image && e.resourceVersion == patch.Workload.Object.GetResourceVersion() &&
				now.Sub(e.at) < expectationTTL {
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// made records the patches among actions, made at now.
func (p *patchExpectations) made(actions []rollout.Action, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		p.set = map[string]expectedPatch{}
	}
	for key, e := range p.set {
		if now.Sub(e.at) >= expectationTTL {
			delete(p.set, key)
		}
	}
	for _, a := range actions {
		if patch, ok := a.(rollout.PatchImage); ok {
			p.set[patchKey(patch)] = expectedPatch{image: patch.Image, resourceVersion: patch.Workload.Object.GetResourceVersion(), at: now}
		}
	}
}
