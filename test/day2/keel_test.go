package day2

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// EnvKeelBinary names a Keel binary to measure beside cvmanager on the same
// 20-app set. Keel is built outside the project (never committed) and only
// when someone wants the comparison; without it the test is skipped.
const EnvKeelBinary = "CVMANAGER_KEEL_BINARY"

// keelPort is Keel's fixed HTTP port; with AUTH_MODE=external-proxy Keel
// binds it on 127.0.0.1 only.
const keelPort = 9300

// TestKeelBeside runs Keel on the same set TestFootprint uses (20
// Deployments over 5 repositories, polled every 10 s, following a moving
// tag) and measures its RSS idle and at 20 apps the same way.
func TestKeelBeside(t *testing.T) {
	bin := os.Getenv(EnvKeelBinary)
	if bin == "" {
		t.Skipf("set %s to a Keel binary to measure it beside cvmanager", EnvKeelBinary)
	}
	fi, err := os.Stat(bin)
	e2eenv.Must(t, err)
	e2eenv.Must(t, binproc.FlushToDisk(bin)) // as TestFootprint does for cvmanager
	record(t, "keel_binary_size", float64(fi.Size())/(1<<20), "MiB", 0, "Keel's binary as built here (not stripped)")

	e := e2eenv.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e.Ctx = ctx
	reg := e2eenv.NewRegistry(t)
	p := startKeel(t, bin)
	start := time.Now()
	e.Eventually(60*time.Second, "Keel answers /healthz", func() (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", keelPort))
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("status %d", resp.StatusCode)
	})
	record(t, "keel_startup_to_healthy", time.Since(start).Seconds(), "s", 0, "start of Keel to /healthz 200")
	peak, last := p.sampleRSS(t, 20*time.Second)
	record(t, "keel_rss_idle_peak", peak, "MiB", 0, "Keel's VmRSS peak over 20 s idle (no annotated workloads)")
	record(t, "keel_rss_idle", last, "MiB", 0, "Keel's VmRSS after 20 s idle")
	recordKeelSplit(t, p, "idle")

	repoOf := func(i int) string { return fmt.Sprintf("keelset/app%d", i%repos) }
	for r := 0; r < repos; r++ {
		reg.MustPush(t, repoOf(r), "v1", "env-prod")
	}
	gens := map[string]int64{}
	for i := 0; i < apps; i++ {
		name := fmt.Sprintf("app%02d", i)
		d := gen.NewDeployment(e.NS, name, name, reg.Repo(repoOf(i))+":env-prod", 1)
		d.Annotations = map[string]string{"keel.sh/policy": "force", "keel.sh/match-tag": "true",
			"keel.sh/trigger": "poll", "keel.sh/pollSchedule": fmt.Sprintf("@every %ds", pollSeconds)}
		created, err := e.Kube.AppsV1().Deployments(e.NS).Create(ctx, d, metav1.CreateOptions{})
		e2eenv.Must(t, err)
		gens[name] = created.Generation
	}
	// Keel records the digest it first sees when it adds a watch: the new
	// version is pushed only once all five watches are in its log.
	e.Eventually(2*time.Minute, "Keel watches the 5 repositories", func() (bool, error) {
		data, err := os.ReadFile(p.log)
		n := strings.Count(string(data), "new watch tag digest job added")
		return n >= repos, fmt.Errorf("%d watches (%v)", n, err)
	})
	for r := 0; r < repos; r++ {
		reg.MustPush(t, repoOf(r), "v2", "env-prod")
	}
	start = time.Now()
	updated := 0
	e.Eventually(4*time.Minute, "Keel updated all 20 Deployments after the push", func() (bool, error) {
		updated = 0
		for name, g := range gens {
			d, err := e.Kube.AppsV1().Deployments(e.NS).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if d.Generation > g {
				updated++
			}
		}
		return updated == apps, fmt.Errorf("%d of %d updated", updated, apps)
	})
	record(t, "keel_twenty_apps_update", time.Since(start).Seconds(), "s", 0, "v2 pushed to the 5 repositories to all 20 Deployments updated by Keel")
	peak, last = p.sampleRSS(t, 60*time.Second)
	record(t, "keel_rss_20_apps_peak", peak, "MiB", 0, "Keel's VmRSS peak over 60 s at 20 apps")
	record(t, "keel_rss_20_apps", last, "MiB", 0, "Keel's VmRSS at the end of those 60 s")
	recordKeelSplit(t, p, "20_apps")
	note("Keel ran as the cluster admin (--no-incluster --kubeconfig), AUTH_MODE=external-proxy (binds 127.0.0.1), INSECURE_REGISTRY=true, policy force with match-tag, poll @every %ds", pollSeconds)
}

func recordKeelSplit(t *testing.T, p *proc, when string) {
	s, err := p.status()
	e2eenv.Must(t, err)
	record(t, "keel_rss_anon_"+when, s["RssAnon"]/1024, "MiB", 0, "Keel's RssAnon "+when)
	record(t, "keel_rss_file_"+when, s["RssFile"]/1024, "MiB", 0, "Keel's RssFile "+when)
}

// startKeel runs Keel outside the cluster against the test control plane,
// stopped by its PID at cleanup.
func startKeel(t *testing.T, bin string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, name: "keel", port: keelPort, log: filepath.Join(dir, "keel.log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	e2eenv.Must(t, err)
	defer out.Close()
	p.cmd = exec.Command(bin, "--no-incluster", "--kubeconfig", controlplane.Shared().KubeconfigPath())
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "AUTH_MODE=external-proxy", "INSECURE_REGISTRY=true", "POLL=1")
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e2eenv.Must(t, binproc.StartLocked(p.cmd))
	p.pid = p.cmd.Process.Pid
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		binproc.Stop(p.pid, p.done)
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("keel log tail:\n%s", data)
		}
	})
	return p
}
