package fleet

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// TestObserverReadsOncePerInterval: a source is read once per interval
// however often the target syncs, at once when its kubeconfig changes,
// and a failed read is an answer too (the target holds).
func TestObserverReadsOncePerInterval(t *testing.T) {
	clock := clocktesting.NewFakeClock(now)
	var reads atomic.Int32
	var fail atomic.Bool
	o := NewObserver()
	o.Clock, o.Interval = clock, 30*time.Second
	o.Read = func(_ context.Context, _ []byte, ns, name string) (*cvv1.ContainerVersion, error) {
		reads.Add(1)
		if fail.Load() {
			return nil, errors.New("connection refused")
		}
		return source(time.Hour), nil
	}
	from := &cvv1.PromotionSource{Namespace: "staging", Name: "web"}
	request := func(kubeconfig string) bool {
		done := make(chan struct{})
		started := o.Request(context.Background(), "prod/web", []byte(kubeconfig), from, func() { close(done) })
		if started {
			<-done
		}
		return started
	}
	if _, ok := o.Lookup("prod/web"); ok {
		t.Fatal("an answer before any read")
	}
	if !request("a") {
		t.Fatal("first request did not read")
	}
	for i := 0; i < 10; i++ {
		if request("a") {
			t.Fatal("read again within the interval")
		}
	}
	if r, ok := o.Lookup("prod/web"); !ok || r.CV == nil || r.Err != nil {
		t.Fatalf("lookup: %+v %v", r, ok)
	}
	if got := o.NextRead("prod/web"); !got.Equal(now.Add(30 * time.Second)) {
		t.Errorf("NextRead %v", got)
	}
	if !request("b") {
		t.Error("a new kubeconfig (rotated Secret) is not read at once")
	}
	clock.Step(30 * time.Second)
	fail.Store(true)
	if !request("b") {
		t.Fatal("not read after the interval")
	}
	if r, _ := o.Lookup("prod/web"); r.Err == nil || r.CV != nil {
		t.Errorf("a failed read must be the answer: %+v", r)
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3", n)
	}
}
