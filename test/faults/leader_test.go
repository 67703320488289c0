package faults

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

// Lease timings of the leader test: short, so the test is quick, and in
// the same proportions as the defaults (15 s / 10 s / 2 s).
const (
	leaseDuration = 3 * time.Second
	renewDeadline = 2 * time.Second
	retryPeriod   = 400 * time.Millisecond
)

// TestLeaderKilledStandbyTakesOver runs two real replicas sharing a Lease.
// The leader is killed with SIGKILL (it cannot release the lease) in the
// middle of a rollout; the standby must take over within the lease
// duration (plus one retry period) and finish the rollout; at no time do
// two processes act (one patch, one history record, one start).
func TestLeaderKilledStandbyTakesOver(t *testing.T) {
	f := newFixture(t, "leader", slow)
	f.createCV()
	lease := "lease-" + f.NS
	args := []string{"--namespace", f.NS, "--insecure-registry", f.reg.Host, "--leader-elect=true",
		"--leader-elect-namespace", "cvmanager-system", "--leader-elect-name", lease,
		"--leader-elect-lease-duration", leaseDuration.String(), "--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String()}
	replicas := map[int]*proc{}
	for _, name := range []string{"replica-a", "replica-b"} {
		p := startProc(t, name, e2eenv.ControllerConfig(t), args...)
		replicas[p.pid] = p
	}
	leader := f.waitLeader(lease, replicas, nil)
	d1 := f.push("v1")
	f.waitPatchedOpen(1)

	killedAt := time.Now()
	leader.kill9()
	successor := f.waitLeader(lease, replicas, leader)
	took := time.Since(killedAt)
	t.Logf("%s took over from %s in %s", successor.name, leader.name, took.Round(time.Millisecond))
	// Slack for a loaded CI machine; still well under two lease durations.
	if limit := leaseDuration + 2*retryPeriod + 2*time.Second; took > limit {
		t.Errorf("takeover took %s, more than the lease duration allows (%s)", took, limit)
	}
	f.WaitStatus(f.app, cvv1.StatusSuccess, d1, 60*time.Second)
	f.assertOnce(1, "Success")
}

// TestLeaderTerminatedStandbyTakesOverAtOnce: with the shipped Lease
// settings (15 s lease), a leader sent SIGTERM in the middle of a rollout
// releases the Lease as it stops, so the standby takes over within 2 s,
// not after the lease expires, and finishes the rollout once.
func TestLeaderTerminatedStandbyTakesOverAtOnce(t *testing.T) {
	f := newFixture(t, "sigterm", slow)
	f.createCV()
	lease := "lease-" + f.NS
	args := []string{"--namespace", f.NS, "--insecure-registry", f.reg.Host, "--leader-elect=true",
		"--leader-elect-namespace", "cvmanager-system", "--leader-elect-name", lease}
	replicas := map[int]*proc{}
	for _, name := range []string{"replica-a", "replica-b"} {
		p := startProc(t, name, e2eenv.ControllerConfig(t), args...)
		replicas[p.pid] = p
	}
	leader := f.waitLeader(lease, replicas, nil)
	d1 := f.push("v1")
	f.waitPatchedOpen(1)

	sent := time.Now()
	if err := syscall.Kill(leader.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	successor := f.waitLeader(lease, replicas, leader)
	took := time.Since(sent)
	t.Logf("MEASURE SIGTERM handover: %s took over from %s in %s", successor.name, leader.name, took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("handover after SIGTERM took %s; the released Lease should be taken within 2 s", took)
	}
	f.WaitStatus(f.app, cvv1.StatusSuccess, d1, 60*time.Second)
	f.assertOnce(1, "Success")
}

// waitLeader waits until the Lease names a live replica other than not,
// and returns it. The identity is "<host>_<pid>", which maps to a process.
func (f *fixture) waitLeader(lease string, replicas map[int]*proc, not *proc) *proc {
	f.T.Helper()
	var leader *proc
	f.Eventually(30*time.Second, "a leader", func() (bool, error) {
		l, err := f.Kube.CoordinationV1().Leases("cvmanager-system").Get(f.Ctx, lease, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err != nil {
			return false, err
		}
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		pid, _ := strconv.Atoi(holder[strings.LastIndex(holder, "_")+1:])
		leader = replicas[pid]
		return leader != nil && leader != not && !leader.exited(), fmt.Errorf("holder %q", holder)
	})
	return leader
}
