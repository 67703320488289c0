package controller

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// LeaderElection configures the Lease that lets only one replica act.
type LeaderElection struct {
	Enabled       bool
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// LeaderState is visible on /readyz so operators see which replica leads.
type LeaderState struct{ leading atomic.Bool }

// IsLeader reports whether this process currently holds the lease.
func (s *LeaderState) IsLeader() bool { return s != nil && s.leading.Load() }

// RunLeaderElected runs fn only while this process holds the Lease. When the
// lease is lost fn's context is cancelled and RunLeaderElected returns, so
// the process exits and restarts clean rather than acting without the lease.
//
// The Lease is released (ReleaseOnCancel) only after fn has returned: the
// election runs on a context of its own, ended when fn is done, not when
// ctx is. Released with ctx, as client-go would, a standby could take the
// Lease and act while this process's workers still finished their syncs,
// and the requests it took in memory (Controller.handOver) could not be
// handed over first.
func RunLeaderElected(ctx context.Context, kube kubernetes.Interface, le LeaderElection, state *LeaderState, fn func(context.Context) error) error {
	if !le.Enabled {
		state.leading.Store(true)
		return fn(ctx)
	}
	if le.Identity == "" {
		host, _ := os.Hostname()
		le.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(le.Namespace, le.Name),
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	election, endElection := context.WithCancel(context.WithoutCancel(ctx))
	defer endElection()
	var started atomic.Bool
	// A standby asked to stop ends its election at once; a leader ends it
	// when fn returns.
	stopStandby := context.AfterFunc(ctx, func() {
		if !started.Load() {
			endElection()
		}
	})
	defer stopStandby()
	var runErr error
	fnDone := make(chan struct{})
	leaderelection.RunOrDie(election, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				if !started.CompareAndSwap(false, true) {
					return // RunLeaderElected has returned already: too late to lead
				}
				defer close(fnDone)
				defer endElection()
				state.leading.Store(true)
				klog.InfoS("Became leader", "identity", le.Identity)
				runErr = fn(untilEither(leading, ctx))
			},
			OnStoppedLeading: func() {
				state.leading.Store(false)
				klog.InfoS("Stopped leading", "identity", le.Identity)
			},
		},
	})
	// Either fn started, and it is waited for (a lost Lease returns before
	// fn has stopped), or it never will: client-go starts it on a goroutine
	// of its own, which may come after the election has ended.
	if !started.CompareAndSwap(false, true) {
		<-fnDone
	}
	return runErr
}

// untilEither is a context of a that is also cancelled with b.
func untilEither(a, b context.Context) context.Context {
	ctx, cancel := context.WithCancel(a)
	context.AfterFunc(b, cancel)
	return ctx
}

// CheckLease fails when the Lease of le cannot be taken: its namespace does
// not exist, or Leases there cannot be created or read. It asks with a
// dry-run create, so nothing is written.
func CheckLease(ctx context.Context, kube kubernetes.Interface, le LeaderElection) error {
	leases := kube.CoordinationV1().Leases(le.Namespace)
	lease := &coordinationv1.Lease{ObjectMeta: metav1ObjectMeta(le.Namespace, le.Name)}
	_, err := leases.Create(ctx, lease, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if apierrors.IsAlreadyExists(err) {
		_, err = leases.Get(ctx, le.Name, metav1.GetOptions{})
	}
	return err
}

func metav1ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
