package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestTheLeaseIsReleasedOnlyAfterTheWorkIsDone: on SIGTERM (ctx cancelled)
// the leader's work is stopped and finishes what it was doing; the Lease is
// released after that, never while this replica still acts, and
// RunLeaderElected returns only then.
func TestTheLeaseIsReleasedOnlyAfterTheWorkIsDone(t *testing.T) {
	kube := fake.NewClientset()
	var mu sync.Mutex
	var released time.Time
	kube.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if h := lease.Spec.HolderIdentity; h == nil || *h == "" {
			mu.Lock()
			released = time.Now()
			mu.Unlock()
		}
		return false, nil, nil
	})
	le := LeaderElection{Enabled: true, Namespace: "cvmanager-system", Name: "cvmanager", Identity: "a",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 50 * time.Millisecond}
	ctx, stop := context.WithCancel(context.Background())
	leading := make(chan struct{})
	var workDone time.Time
	work := func(ctx context.Context) error {
		close(leading)
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // a sync finishing its writes
		workDone = time.Now()
		return nil
	}
	returned := make(chan error)
	go func() { returned <- RunLeaderElected(ctx, kube, le, &LeaderState{}, work) }()
	select {
	case <-leading:
	case <-time.After(10 * time.Second):
		t.Fatal("never became leader")
	}
	stop()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunLeaderElected did not return after its context ended")
	}
	if workDone.IsZero() {
		t.Fatal("returned before the work had finished")
	}
	mu.Lock()
	defer mu.Unlock()
	if released.IsZero() {
		t.Fatal("the Lease was not released")
	}
	if released.Before(workDone) {
		t.Errorf("the Lease was released %s before the work was done: a standby could act beside it", workDone.Sub(released))
	}
}

// TestAStandbyStopsAtOnce: a replica that never led returns as soon as its
// context ends, without running the work.
func TestAStandbyStopsAtOnce(t *testing.T) {
	holder, hour := "b", int32(3600)
	kube := fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cvmanager-system", Name: "cvmanager"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &hour,
			AcquireTime: &metav1.MicroTime{Time: time.Now()}, RenewTime: &metav1.MicroTime{Time: time.Now()}},
	})
	le := LeaderElection{Enabled: true, Namespace: "cvmanager-system", Name: "cvmanager", Identity: "a",
		LeaseDuration: time.Hour, RenewDeadline: time.Second, RetryPeriod: 50 * time.Millisecond}
	ctx, stop := context.WithCancel(context.Background())
	ran := false
	returned := make(chan error)
	go func() {
		returned <- RunLeaderElected(ctx, kube, le, &LeaderState{}, func(context.Context) error { ran = true; return nil })
	}()
	stop()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("a standby did not return after its context ended")
	}
	if ran {
		t.Error("a standby ran the work")
	}
}
