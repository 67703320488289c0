package fleet

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// DefaultSourceInterval is how often a promotion source is read: one GET
// of one object per target and interval.
const DefaultSourceInterval = 30 * time.Second

// SourceRead is the last read of a target's promotion source.
type SourceRead struct {
	// CV is the source as read (nil when the read failed).
	CV *cvv1.ContainerVersion
	// Err is why the read failed.
	Err error
	// At is when the read finished.
	At time.Time
}

// Observer is the controller's observer of promotion sources: observe
// calls Lookup for what was last read (never blocking a sync on another
// cluster) and Request to have it read again in the background once the
// interval has passed or the kubeconfig changed; done (enqueue the
// target) runs when a new answer is stored.
type Observer struct {
	// Read reads one source; NewObserver sets a Reader's.
	Read func(ctx context.Context, kubeconfig []byte, namespace, name string) (*cvv1.ContainerVersion, error)
	// Interval between reads of one source (default 30 s).
	Interval time.Duration
	Clock    clock.Clock

	mu      sync.Mutex
	entries map[string]*observed
}

type observed struct {
	read     SourceRead
	done     bool
	inFlight bool
	config   [32]byte
	source   string
}

// NewObserver reads through a fresh Reader.
func NewObserver() *Observer {
	return &Observer{Read: NewReader().Read, Interval: DefaultSourceInterval, Clock: clock.RealClock{}, entries: map[string]*observed{}}
}

// Lookup returns the last read of target's source (target is the target
// CV's namespace/name); ok is false before the first read ends.
func (o *Observer) Lookup(target string) (SourceRead, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entries[target]
	if e == nil || !e.done {
		return SourceRead{}, false
	}
	return e.read, true
}

// Request reads from's source CV with kubeconfig for target unless a read
// is under way or the last one is younger than Interval (and was made with
// the same kubeconfig and source). It reports whether a read started.
func (o *Observer) Request(ctx context.Context, target string, kubeconfig []byte, from *cvv1.PromotionSource, done func()) bool {
	sum := sha256.Sum256(kubeconfig)
	source := from.Namespace + "/" + from.Name
	now := o.Clock.Now()
	o.mu.Lock()
	e := o.entries[target]
	if e == nil {
		e = &observed{}
		o.entries[target] = e
	}
	changed := e.config != sum || e.source != source
	if e.inFlight || (!changed && e.done && now.Sub(e.read.At) < o.Interval) {
		o.mu.Unlock()
		return false
	}
	e.inFlight, e.config, e.source = true, sum, source
	o.mu.Unlock()
	go func() {
		cv, err := o.Read(ctx, kubeconfig, from.Namespace, from.Name)
		o.mu.Lock()
		e.read, e.done, e.inFlight = SourceRead{CV: cv, Err: err, At: o.Clock.Now()}, true, false
		o.mu.Unlock()
		if done != nil {
			done()
		}
	}()
	return true
}

// NextRead is when target's source should be read again, for AddAfter.
func (o *Observer) NextRead(target string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.entries[target]; e != nil && e.done {
		return e.read.At.Add(o.Interval)
	}
	return o.Clock.Now()
}

// Forget drops a target that no longer has a promotion source.
func (o *Observer) Forget(target string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.entries, target)
}
