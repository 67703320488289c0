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

// statusEchoes remember, per CV, the resourceVersion this controller's last
// status write replaced, until the CV cache shows the write. A sync that
// runs before then (a Deployment's event outran the CV's echo, which a busy
// apiserver delays) would plan from the object the write replaced, and its
// own status write would be refused with a conflict: a request spent and a
// retry queued for nothing. It is skipped instead; the echo queues the key
// again. A cache that has not caught up within expectationTTL is not
// waited for.
type statusEchoes struct {
	mu  sync.Mutex
	set map[string]expectedEcho
}

type expectedEcho struct {
	replaced string
	at       time.Time
}

// wrote records that a status write of key at now moved its
// resourceVersion from replaced to written. A write that did not move it
// (a fake clientset's) leaves no echo to wait for.
func (s *statusEchoes) wrote(key, replaced, written string, now time.Time) {
	if replaced == written {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]expectedEcho{}
	}
	for k, e := range s.set {
		if now.Sub(e.at) >= expectationTTL {
			delete(s.set, k)
		}
	}
	s.set[key] = expectedEcho{replaced: replaced, at: now}
}

// awaited says whether the cache, at resourceVersion cached, still holds
// the object key's last status write replaced. Once it does not, the
// write is forgotten.
func (s *statusEchoes) awaited(key, cached string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.set[key]
	if !ok {
		return false
	}
	if e.replaced == cached && now.Sub(e.at) < expectationTTL {
		return true
	}
	delete(s.set, key)
	return false
}
