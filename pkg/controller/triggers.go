package controller

import (
	"sync"
	"time"
)

// triggerTimes remembers when the pending trigger of each CV arrived.
//
// Why: a trigger must not be answered from a registry result older than
// the trigger (the tag has just moved), but it need not be answered by a
// request of its own either. CI triggers one image, and every CV following
// it is forced at once: with the arrival time, all of them accept the one
// answer fetched after it, so a burst of 1,000 CVs over 100 images costs
// about 100 registry requests, not 1,000 (which at a per-host budget of
// 50/s alone took 20 s and ran the budget dry).
type triggerTimes struct {
	mu sync.Mutex
	at map[string]time.Time
}

// note records a trigger for key; an earlier pending one is kept, so the
// poll that serves both is fresh for the older.
func (t *triggerTimes) note(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil {
		t.at = map[string]time.Time{}
	}
	if _, ok := t.at[key]; !ok {
		t.at[key] = now
	}
}

// maxAge consumes key's pending trigger and returns how old a shared
// registry answer may be to serve it: the time since the trigger arrived,
// or 0 (a request of its own) when no trigger time is known.
func (t *triggerTimes) maxAge(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[key]
	if !ok {
		return 0
	}
	delete(t.at, key)
	return max(now.Sub(at), 0)
}
