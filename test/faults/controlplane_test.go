package faults

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
)

func slow(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 4 }

// waitPatchedOpen waits until the workload was patched and the rollout is
// still open: the moment a fault hurts most.
func (f *fixture) waitPatchedOpen(patches int64) {
	f.T.Helper()
	f.Eventually(60*time.Second, "workload patched, rollout open", func() (bool, error) {
		return f.patches() == patches && f.cv().Status.Rollout != nil, nil
	})
}

// TestAPIServerRestartMidRollout restarts kube-apiserver between the patch
// and the end of a rollout: every connection and watch of the controller
// drops. The rollout must finish once, and the next version must still be
// noticed (the informers came back).
func TestAPIServerRestartMidRollout(t *testing.T) {
	f := newFixture(t, "restart", slow)
	f.createCV()
	f.startController("controller")
	d1 := f.push("v1")
	f.waitPatchedOpen(1)
	begin := time.Now()
	e2eenv.Must(t, controlplane.Shared().RestartAPIServer(f.Ctx))
	t.Logf("apiserver restarted in %s", time.Since(begin).Round(time.Millisecond))
	f.WaitStatus(f.app, cvv1.StatusSuccess, d1, 90*time.Second)

	f.rollOut("v2", 60*time.Second)
	f.assertOnce(2, "Success", "Success")
}

// TestWatchConnectionsDropped puts a TCP proxy between the controller and
// the apiserver and cuts every connection (watches included) every 1.5 s
// throughout two rollouts. (Much shorter and, on a loaded machine, a
// TLS handshake plus a LIST no longer fits between two cuts: the fault
// would then be "apiserver unreachable", which no client survives.)
func TestWatchConnectionsDropped(t *testing.T) {
	f := newFixture(t, "drops", slow)
	f.createCV()
	proxy := startCutProxy(t, controlplane.SharedConfig().Host)
	cfg := rest.CopyConfig(e2eenv.ControllerConfig(t))
	cfg.Host = "https://" + proxy.addr
	startProc(t, "controller", cfg, "--namespace", f.NS, "--leader-elect=false", "--insecure-registry", f.reg.Host)
	stop := proxy.cutEvery(1500 * time.Millisecond)
	defer stop()

	f.rollOut("v1", 120*time.Second)
	f.rollOut("v2", 120*time.Second)
	stop()
	if proxy.cut.Load() == 0 {
		t.Fatal("no connection was cut: the fault was not injected")
	}
	t.Logf("%d connections cut", proxy.cut.Load())
	f.assertOnce(2, "Success", "Success")
}

// TestCompetingWriterConflicts: another client rewrites the CV's metadata
// and the history ConfigMap as fast as it can, so the controller's status
// updates and history appends keep hitting resourceVersion conflicts. Two
// rollouts still finish exactly once. (The Deployment is left alone: the
// controller patches it without a resourceVersion, so it cannot conflict,
// and a writer there starves kube-controller-manager instead.)
func TestCompetingWriterConflicts(t *testing.T) {
	f := newFixture(t, "conflicts", slow)
	f.createCV()
	f.startController("controller")
	writes, stop := f.competingWriter()
	defer stop()

	f.rollOut("v1", 90*time.Second)
	f.rollOut("v2", 90*time.Second)
	stop()
	if writes.Load() < 20 {
		t.Fatalf("only %d competing writes: the fault was not injected", writes.Load())
	}
	t.Logf("%d competing writes", writes.Load())
	f.assertOnce(2, "Success", "Success")
}

// competingWriter bumps an annotation on the CV and on the history
// ConfigMap in a loop.
func (f *fixture) competingWriter() (*atomic.Int64, func()) {
	ctx, cancel := context.WithCancel(f.Ctx)
	var writes atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			patch := []byte(`{"metadata":{"annotations":{"faults.cvmanager.dev/writer":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`)
			opts := metav1.PatchOptions{}
			if _, err := f.CVClient.CvmanagerV1alpha1().ContainerVersions(f.NS).Patch(ctx, f.app, types.MergePatchType, patch, opts); err == nil {
				writes.Add(1)
			}
			if _, err := f.Kube.CoreV1().ConfigMaps(f.NS).Patch(ctx, f.app+".history", types.MergePatchType, patch, opts); err == nil {
				writes.Add(1)
			}
			// ~100 writes/s: a conflict on nearly every controller write,
			// without saturating a 2-core apiserver for everyone else.
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var once sync.Once
	return &writes, func() { once.Do(func() { cancel(); <-done }) }
}

// cutProxy forwards TCP to the apiserver and can cut every open connection,
// which drops the controller's watches without restarting anything.
type cutProxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	cut   atomic.Int64
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	u, err := url.Parse(target)
	e2eenv.Must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e2eenv.Must(t, err)
	p := &cutProxy{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve(u.Host)
	t.Cleanup(func() { _ = ln.Close(); p.cutAll() })
	return p
}

func (p *cutProxy) serve(target string) {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client, server)
		go func() { _, _ = io.Copy(server, client); _ = server.Close() }()
		go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
	}
}

func (p *cutProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		p.cut.Add(1)
	}
	clear(p.conns)
}

// cutEvery cuts all connections periodically until the returned func runs.
func (p *cutProxy) cutEvery(every time.Duration) (stop func()) {
	ticker := time.NewTicker(every)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				p.cutAll()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { ticker.Stop(); close(done) }) }
}
