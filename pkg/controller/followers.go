package controller

import (
	"sync"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/syncer"
)

// followedIndex indexes CVs by the repo:tag they follow.
const followedIndex = "followed"

// followedKey names what a CV follows: CVs with one key ask the registry
// the same question (their credentials may still differ).
func followedKey(cv *cvv1.ContainerVersion) string {
	return cv.Spec.Provider + "|" + cv.Spec.ImageRepo + ":" + cv.Spec.Tag
}

func followedKeys(obj any) ([]string, error) {
	cv, ok := obj.(*cvv1.ContainerVersion)
	if !ok {
		return nil, nil
	}
	return []string{followedKey(cv)}, nil
}

// announcedDigests remembers, per followed repo:tag, the last new digest a
// scheduled poll announced to the other followers, so one move wakes them
// once, however many of them then see it.
type announcedDigests struct {
	mu   sync.Mutex
	last map[string]string
}

// maxAnnounced bounds the memory of refs that come and go (a preview tag
// per pull request): past it the map starts afresh, and the worst that
// costs is one more round of wakes, each answered from the shared result.
const maxAnnounced = 4096

// first reports whether digest is news for key, and remembers it.
func (a *announcedDigests) first(key, digest string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last[key] == digest {
		return false
	}
	if a.last == nil || len(a.last) >= maxAnnounced {
		a.last = map[string]string{}
	}
	a.last[key] = digest
	return true
}

// wakeFollowers brings forward the next poll of every other CV following
// cv's repo:tag once a scheduled poll of cv found digest new.
//
// Why: followers share the registry's answer for a whole poll interval
// (one request per ref per interval). Without the wake, a follower whose
// poll fell just before the push reused the old answer at its next poll
// and saw the move up to two intervals after it; the bench's 1,000-CV poll
// round lost 9 of 500 rollouts past its 90 s wait that way. Woken, each
// follower polls now and is answered from the fresh shared result: the
// first poll after a push moves every follower, at no extra request.
func (c *Controller) wakeFollowers(cv *cvv1.ContainerVersion, digest string) {
	if c.cvIndexer == nil || !c.announced.first(followedKey(cv), digest) {
		return
	}
	objs, err := c.cvIndexer.ByIndex(followedIndex, followedKey(cv))
	if err != nil {
		return
	}
	for _, obj := range objs {
		peer, ok := obj.(*cvv1.ContainerVersion)
		if !ok || peer.UID == cv.UID || !lacksDigest(peer.Status, digest) {
			continue
		}
		key := peer.Namespace + "/" + peer.Name
		if s := c.existingSyncer(key); s != nil {
			s.wake()
			c.queue.Add(key)
		}
	}
}

// lacksDigest: a follower would start a rollout to digest once its
// current rollout, if any, is over.
func lacksDigest(status cvv1.ContainerVersionStatus, digest string) bool {
	status.Rollout = nil
	return syncer.Decide(&status, digest) == syncer.StartRollout
}
