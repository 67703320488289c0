package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cvmanager.dev/cvmanager/test/binproc"
)

// ctrlProc is one `cvmanager run` process started by the bench.
type ctrlProc struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	done    chan struct{}
	started time.Time
}

// startController runs the product binary with the bench's flags. The
// process gets its own process group and dies with the bench (Pdeathsig).
func startController(e *env, name string, extra ...string) (*ctrlProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startControllerOn(e, name, port, extra...)
}

// startControllerOn is startController on a port chosen beforehand (a
// registry's notifications must name it before the controller starts).
func startControllerOn(e *env, name string, port int, extra ...string) (*ctrlProc, error) {
	cfg := e.cfg
	args := append([]string{"run",
		"--kubeconfig", e.kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--port", strconv.Itoa(port),
		"--insecure-registry", e.proxy.host,
		"--registry-qps", strconv.Itoa(cfg.registryQPS), "--registry-burst", strconv.Itoa(cfg.registryBurst),
		"--kube-api-qps", strconv.Itoa(cfg.kubeQPS), "--kube-api-burst", strconv.Itoa(cfg.kubeBurst),
		"--concurrent-syncs", strconv.Itoa(cfg.workers),
		"--last-polled-interval", cfg.lastPolled.String(),
		"--trigger-keys-dir", e.keysDir, "--trigger-rate", "1000",
		"--enable-pprof",
	}, extra...)
	logPath := filepath.Join(e.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(e.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &ctrlProc{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), logPath: logPath, done: make(chan struct{}), started: time.Now()}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.current = p
	say("started cvmanager (pid %d) on %s", cmd.Process.Pid, p.addr)
	return p, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// keptLog is how much of the end of a controller's log the results keep.
const keptLog = 64 << 10

// stop sends SIGTERM to exactly this process, SIGKILL after 15 s, and
// keeps the end of its log under <out>/logs for reading what the figures
// hide.
func (p *ctrlProc) stop(out string) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if b, err := os.ReadFile(p.logPath); err == nil && ensureDir(filepath.Join(out, "logs")) == nil {
		if len(b) > keptLog {
			b = b[len(b)-keptLog:] // the results folder is committed: keep it small
		}
		_ = os.WriteFile(filepath.Join(out, "logs", filepath.Base(p.logPath)), b, 0o644)
	}
}

// countLogLines counts substr in the controller's whole log (not the tail
// kept in the results): the lines of a message, which a line holds once.
func (p *ctrlProc) countLogLines(substr string) (int, error) {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), substr), nil
}

// waitReady waits for /readyz to report synced informers and returns how
// long the process took from start.
func (p *ctrlProc) waitReady(ctx context.Context, limit time.Duration) (time.Duration, error) {
	ok := waitFor(ctx, limit, func() bool {
		body, err := p.get("/readyz")
		return err == nil && strings.Contains(body, `"informersSynced":true`)
	})
	if !ok {
		return 0, fmt.Errorf("cvmanager not ready after %s (log %s):\n%s", limit, p.logPath, tail(p.logPath))
	}
	return time.Since(p.started), nil
}

func (p *ctrlProc) get(path string) (string, error) {
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric returns the sum of a Prometheus series' samples whose line
// contains every filter (e.g. `outcome="Success"`).
func (p *ctrlProc) metric(name string, filters ...string) float64 {
	body, err := p.get("/metrics")
	if err != nil {
		return -1
	}
	return sumMetric(body, name, filters...)
}

func sumMetric(body, name string, filters ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, f := range filters {
			if !strings.Contains(line, f) {
				continue lines
			}
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// procSample is the controller's resource use read from /proc.
type procSample struct {
	at      time.Time
	cpuTick uint64 // utime + stime, in clock ticks
	rssKiB  int64
}

// sample reads /proc/<pid>/stat and /proc/<pid>/status.
func (p *ctrlProc) sample() (procSample, error) {
	pid := p.cmd.Process.Pid
	s := procSample{at: time.Now()}
	stat, err := binproc.ReadStat(pid)
	if err != nil {
		return s, err
	}
	s.cpuTick = stat.CPUTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			s.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return s, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuPercent is the share of one core used between two samples.
func cpuPercent(a, b procSample) float64 {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return 100 * float64(b.cpuTick-a.cpuTick) / clockTicks / secs
}

// fetch saves a pprof endpoint's answer to path.
func (p *ctrlProc) fetch(ctx context.Context, endpoint, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", endpoint, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// tail is the end of a log, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
