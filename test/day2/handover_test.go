package day2

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

const (
	apiKey = "day2-trigger-KEY-5f1c9a0e77"
	// Shipped Lease settings (run's defaults), which the test does not override.
	shippedLeaseDuration = 15 * time.Second
	shippedRetryPeriod   = 500 * time.Millisecond
)

// handover is one test's two replicas behind a Lease, an app, and a CV
// that only triggers move (it polls hourly).
type handover struct {
	e        *e2eenv.Env
	reg      *e2eenv.Registry
	lease    string
	args     []string
	replicas map[int]*proc
}

// TestHandover measures, with the shipped Lease settings, how long after
// SIGTERM (the leader releases the Lease) and after kill -9 (it cannot) a
// standby holds the Lease and has acted on a trigger the standby accepted
// just after the leader was told to go.
func TestHandover(t *testing.T) {
	e := e2eenv.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e.Ctx = ctx
	h := &handover{e: e, reg: e2eenv.NewRegistry(t), lease: "handover-" + e.NS, replicas: map[int]*proc{}}
	keys := filepath.Join(t.TempDir(), "keys")
	e2eenv.Must(t, os.MkdirAll(keys, 0o700))
	e2eenv.Must(t, os.WriteFile(filepath.Join(keys, "ci"), []byte(apiKey+"\n"), 0o600))
	h.args = []string{"--namespace", e.NS, "--insecure-registry", h.reg.Host, "--trigger-keys-dir", keys,
		"--leader-elect-namespace", "cvmanager-system", "--leader-elect-name", h.lease}

	repo := h.reg.Repo("team/web")
	d0 := h.reg.MustPush(t, "team/web", "v0", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(ctx, gen.NewDeployment(e.NS, "web", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "web", repo, func(s *cvv1.ContainerVersionSpec) { s.PollIntervalSeconds = 3600 }))
	a, b := h.start("replica-a"), h.start("replica-b")
	a.waitReady(t, 60*time.Second)
	b.waitReady(t, 60*time.Second)
	leader := h.leader(nil, 30*time.Second)
	e.WaitStatus("web", cvv1.StatusSuccess, d0, 60*time.Second)

	// SIGTERM: the leader cancels its work and releases the Lease.
	standby := h.other(leader)
	lease, acted, exited := h.goAway(leader, standby, "v1", syscall.SIGTERM)
	record(t, "sigterm_handover_lease", lease.Seconds(), "s", 2, "SIGTERM to the leader until the standby holds the Lease (shipped settings)")
	record(t, "sigterm_handover_acted", acted.Seconds(), "s", 2, "SIGTERM to the leader until the standby has patched the Deployment for a trigger it accepted after the SIGTERM")
	record(t, "sigterm_leader_exit", exited.Seconds(), "s", 0, "SIGTERM to the old leader's exit")

	// kill -9: the Lease must expire first.
	c := h.start("replica-c")
	c.waitReady(t, 60*time.Second)
	leader, standby = standby, c
	lease, acted, _ = h.goAway(leader, standby, "v2", syscall.SIGKILL)
	limit := (shippedLeaseDuration + 22*shippedRetryPeriod/10 + time.Second).Seconds()
	record(t, "kill9_takeover_lease", lease.Seconds(), "s", limit, "kill -9 of the leader until the standby holds the Lease (lease duration 15 s, retry 0.5 s)")
	record(t, "kill9_takeover_acted", acted.Seconds(), "s", limit, "kill -9 of the leader until the standby has patched the Deployment for a trigger it accepted after the kill")
}

func (h *handover) start(name string) *proc {
	p := startProc(h.e.T, name, e2eenv.ControllerConfig(h.e.T), h.args...)
	h.replicas[p.pid] = p
	return p
}

// other is a live replica that is not p.
func (h *handover) other(p *proc) *proc {
	for _, r := range h.replicas {
		if r != p && !r.exited() {
			return r
		}
	}
	h.e.T.Fatal("no other live replica")
	return nil
}

// holder is the replica the Lease names ("<host>_<pid>"), or nil.
func (h *handover) holder() *proc {
	l, err := h.e.Kube.CoordinationV1().Leases("cvmanager-system").Get(h.e.Ctx, h.lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return nil
	}
	id := *l.Spec.HolderIdentity
	pid, _ := strconv.Atoi(id[strings.LastIndex(id, "_")+1:])
	return h.replicas[pid]
}

// leader waits for a live leader other than not.
func (h *handover) leader(not *proc, timeout time.Duration) *proc {
	var p *proc
	h.e.Eventually(timeout, "a leader", func() (bool, error) {
		p = h.holder()
		return p != nil && p != not && !p.exited(), fmt.Errorf("holder %v", p)
	})
	return p
}

// goAway pushes version, sends sig to the leader, has the standby accept a
// trigger for the CV, and times (from the signal) the standby taking the
// Lease, the Deployment being patched to the new digest, and the old
// leader's exit.
func (h *handover) goAway(leader, standby *proc, version string, sig syscall.Signal) (lease, acted, exited time.Duration) {
	t := h.e.T
	digest := h.reg.MustPush(t, "team/web", version, "env-prod")
	sent := time.Now()
	e2eenv.Must(t, syscall.Kill(leader.pid, sig))
	h.trigger(standby)
	for lease == 0 || acted == 0 || exited == 0 {
		now := time.Since(sent)
		if now > 60*time.Second {
			t.Fatalf("after %s: lease %s acted %s exited %s", now, lease, acted, exited)
		}
		if lease == 0 && h.holder() == standby {
			lease = now
		}
		if acted == 0 && strings.Contains(h.e.DeploymentImage("web"), digest) {
			acted = now
		}
		if exited == 0 && leader.exited() {
			exited = now
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s of %s: %s held the lease after %s, acted after %s; the old leader exited after %s",
		sig, leader.name, standby.name, lease, acted, exited)
	if acted < lease {
		t.Errorf("the Deployment was patched after %s, before the standby held the Lease (%s): the old leader acted after %s", acted, lease, sig)
	}
	h.e.WaitStatus("web", cvv1.StatusSuccess, digest, 60*time.Second)
	return lease, acted, exited
}

// trigger asks p to roll the CV out now; any replica accepts it and
// records it on the CV for the leader.
func (h *handover) trigger(p *proc) {
	body := fmt.Sprintf(`{"namespace":%q,"name":"web"}`, h.e.NS)
	req, err := http.NewRequest(http.MethodPost, p.url()+"/v1/trigger", strings.NewReader(body))
	e2eenv.Must(h.e.T, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	e2eenv.Must(h.e.T, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		h.e.T.Fatalf("trigger on %s: %d", p.name, resp.StatusCode)
	}
}
