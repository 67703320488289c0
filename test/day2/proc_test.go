package day2

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/controlplane"
)

// proc is one `cvmanager run` process, stopped by its PID at cleanup.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	pid  int
	port int
	log  string
	done chan struct{}
}

// startProc runs `cvmanager run` as cfg's identity with extra flags.
func startProc(t *testing.T, name string, cfg *rest.Config, args ...string) *proc {
	t.Helper()
	shippedController(t)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := controlplane.Shared().WriteKubeconfig(cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, port: binproc.FreePort(t), log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	full := append([]string{"run", "--kubeconfig", kubeconfig, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(p.port)}, args...)
	p.cmd = exec.Command(binproc.Binary(t), full...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := binproc.StartLocked(p.cmd); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p.pid = p.cmd.Process.Pid
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		binproc.Stop(p.pid, p.done)
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			if len(data) > 3000 {
				data = data[len(data)-3000:]
			}
			t.Logf("%s (pid %d) log tail:\n%s", name, p.pid, data)
		}
	})
	return p
}

func (p *proc) url() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// status reads the process's memory lines (VmRSS, RssAnon, RssFile, ...)
// from /proc, in KiB.
func (p *proc) status() (map[string]float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(rest, " kB") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(rest, " kB")), 64); err == nil {
			out[key] = v
		}
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, fmt.Errorf("no VmRSS for pid %d", p.pid)
	}
	return out, nil
}

// majorFaults is the process's major page faults so far: the pages it
// had to read from the disk.
func (p *proc) majorFaults() (float64, error) {
	s, err := binproc.ReadStat(p.pid)
	return float64(s.MajorFaults), err
}

// rssKiB is the process's resident set (VmRSS).
func (p *proc) rssKiB() (float64, error) {
	s, err := p.status()
	return s["VmRSS"], err
}

// sampleRSS samples RSS every 500 ms for d and returns the peak and the
// last sample, in MiB.
func (p *proc) sampleRSS(t testing.TB, d time.Duration) (peak, last float64) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		kib, err := p.rssKiB()
		if err != nil {
			t.Fatal(err)
		}
		last = kib / 1024
		peak = max(peak, last)
		time.Sleep(500 * time.Millisecond)
	}
	return peak, last
}

// get is a GET of path on the process's HTTP server.
func (p *proc) get(path string) (int, string, error) {
	resp, err := http.Get(p.url() + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// metric is the value of an unlabelled Prometheus metric on /metrics.
func (p *proc) metric(name string) (float64, error) {
	_, body, err := p.get("/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// waitReady waits for /readyz 200 and returns how long it took.
func (p *proc) waitReady(t testing.TB, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if p.exited() {
			data, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited:\n%s", p.name, data)
		}
		if code, _, err := p.get("/readyz"); err == nil && code == http.StatusOK {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s", p.name, limit)
	return 0
}
