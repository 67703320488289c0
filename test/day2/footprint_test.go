package day2

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// Targets of issue 32: half of the 82-105 MiB Keel used on the same set.
const (
	rssTargetMiB = 45
	apps         = 20
	repos        = 5
	pollSeconds  = 10
)

var (
	shippedOnce sync.Once
	shippedPath string
	shippedSize float64
)

// shippedController builds the controller as shipped, once per run, where
// binproc runs it from.
func shippedController(t *testing.T) (string, float64) {
	shippedOnce.Do(func() { shippedPath, shippedSize = buildShipped(t, binDir, "cvmanager") })
	if shippedPath == "" {
		t.Fatal("the shipped controller did not build")
	}
	return shippedPath, shippedSize
}

// buildShipped builds ./cmd/<name> the way the Dockerfile does (static,
// stripped, trimmed) into dir and returns its path and size in MiB.
func buildShipped(t *testing.T, dir, name string) (string, float64) {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "kustomize_disable_go_plugin_support", "-ldflags", "-s -w", "-o", out, "./cmd/"+name)
	cmd.Dir = kubetest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	e2eenv.Must(t, binproc.FlushToDisk(out))
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, float64(fi.Size()) / (1 << 20)
}

// TestFootprint builds both binaries as shipped, then runs the controller
// cluster-wide with leader election (as the chart installs it) and
// measures its RSS idle and at 20 apps after two rollouts of every app.
func TestFootprint(t *testing.T) {
	bin, size := shippedController(t)
	record(t, "binary_size_cvmanager", size, "MiB", 0, "the controller and CLI (`run`), built as the Dockerfile builds it")
	_, stateSize := buildShipped(t, binDir, "cvmanager-state")
	record(t, "binary_size_cvmanager_state", stateSize, "MiB", 0, "the state commands with the Helm SDK, run by `cvmanager state`")
	if got := binproc.Binary(t); got != bin {
		t.Fatalf("the processes would run %s, not the shipped build %s", got, bin)
	}

	e := e2eenv.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e.Ctx = ctx
	reg := e2eenv.NewRegistry(t)
	p := startProc(t, "controller", e2eenv.ControllerConfig(t), "--insecure-registry", reg.Host, "--enable-pprof",
		"--leader-elect-namespace", "cvmanager-system", "--leader-elect-name", "footprint-"+e.NS)
	ready := p.waitReady(t, 60*time.Second)
	record(t, "startup_to_ready", ready.Seconds(), "s", 0, "start of `cvmanager run` to /readyz 200 (caches synced)")
	peak, last := p.sampleRSS(t, 20*time.Second)
	record(t, "rss_idle_peak", peak, "MiB", rssTargetMiB, "VmRSS peak over 20 s idle after ready (no CVs), cluster-wide, leader")
	record(t, "rss_idle", last, "MiB", rssTargetMiB, "VmRSS after 20 s idle")
	recordSplit(t, p, "idle")

	// 20 Deployments over 5 repositories, each followed by a CV polling every 10 s.
	repoOf := func(i int) string { return reg.Repo(fmt.Sprintf("keelset/app%d", i%repos)) }
	v1 := map[string]string{}
	for r := 0; r < repos; r++ {
		v1[repoOf(r)] = reg.MustPush(t, fmt.Sprintf("keelset/app%d", r), "v1", "env-prod")
	}
	for i := 0; i < apps; i++ {
		name := fmt.Sprintf("app%02d", i)
		_, err := e.Kube.AppsV1().Deployments(e.NS).Create(ctx, gen.NewDeployment(e.NS, name, name, repoOf(i)+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		e.CreateCV(gen.NewCV(e.NS, name, repoOf(i), func(s *cvv1.ContainerVersionSpec) { s.PollIntervalSeconds = pollSeconds }))
	}
	start := time.Now()
	waitAll(e, func(i int) string { return v1[repoOf(i)] }, 3*time.Minute)
	record(t, "twenty_apps_first_rollout", time.Since(start).Seconds(), "s", 0, "20 CVs created to all 20 rolled out to v1")
	v2 := map[string]string{}
	for r := 0; r < repos; r++ {
		v2[repoOf(r)] = reg.MustPush(t, fmt.Sprintf("keelset/app%d", r), "v2", "env-prod")
	}
	start = time.Now()
	waitAll(e, func(i int) string { return v2[repoOf(i)] }, 3*time.Minute)
	record(t, "twenty_apps_second_rollout", time.Since(start).Seconds(), "s", 0,
		fmt.Sprintf("v2 pushed to the 5 repositories to all 20 rolled out (polls every %d s)", pollSeconds))

	peak, last = p.sampleRSS(t, 60*time.Second)
	record(t, "rss_20_apps_peak", peak, "MiB", rssTargetMiB, "VmRSS peak over 60 s (6 polls) after both rollouts, 20 apps")
	record(t, "rss_20_apps", last, "MiB", rssTargetMiB, "VmRSS at the end of those 60 s")
	recordSplit(t, p, "20_apps")
	for _, m := range []struct{ metric, name, what string }{
		{"go_memstats_heap_inuse_bytes", "heap_inuse_20_apps", "Go heap in use at 20 apps"},
		{"go_memstats_sys_bytes", "go_sys_20_apps", "memory the Go runtime holds from the OS at 20 apps"},
	} {
		v, err := p.metric(m.metric)
		e2eenv.Must(t, err)
		record(t, m.name, v/(1<<20), "MiB", 0, m.what)
	}
	heapProfile(t, p, bin)
}

// waitAll waits until the 20 CVs report Success at digestOf(i).
func waitAll(e *e2eenv.Env, digestOf func(i int) string, timeout time.Duration) {
	e.Eventually(timeout, "20 apps rolled out", func() (bool, error) {
		done := 0
		for i := 0; i < apps; i++ {
			cv, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Get(e.Ctx, fmt.Sprintf("app%02d", i), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if cv.Status.CurrStatus == cvv1.StatusSuccess && cv.Status.Rollout == nil && cv.Status.CurrDigest == digestOf(i) {
				done++
			}
		}
		return done == apps, fmt.Errorf("%d of %d rolled out", done, apps)
	})
}

// heapProfile keeps the heap profile at 20 apps beside the results and
// notes its top entries, to show where the memory goes.
func heapProfile(t *testing.T, p *proc, bin string) {
	code, body, err := p.get("/debug/pprof/heap?gc=1")
	if err != nil || code != 200 {
		t.Fatalf("heap profile: %d %v", code, err)
	}
	dir := filepath.Join(kubetest.RepoRoot(), "bench", "results", "pprof")
	e2eenv.Must(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, figures.Started.Format("2006-01-02T1504")+"-day2-heap-20apps.pb.gz")
	e2eenv.Must(t, os.WriteFile(path, []byte(body), 0o644))
	out, err := exec.Command("go", "tool", "pprof", "-top", "-inuse_space", "-nodecount=12", bin, path).CombinedOutput()
	if err != nil {
		t.Logf("pprof -top: %v\n%s", err, out)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if strings.Contains(l, "flat%") || strings.HasPrefix(strings.TrimSpace(l), "Showing") || strings.Contains(l, "MB") || strings.Contains(l, "kB") {
			note("heap at 20 apps (%s): `%s`", filepath.Base(path), strings.Join(strings.Fields(l), " "))
		}
	}
}

// recordSplit records the resident set's anonymous part (heap, stacks,
// runtime) and its file-backed part (the binary's pages that were read).
func recordSplit(t *testing.T, p *proc, when string) {
	s, err := p.status()
	e2eenv.Must(t, err)
	record(t, "rss_anon_"+when, s["RssAnon"]/1024, "MiB", 0, "RssAnon "+when+": heap, stacks, runtime")
	record(t, "rss_file_"+when, s["RssFile"]/1024, "MiB", 0, "RssFile "+when+": pages of the binary read so far (shared, reclaimable)")
	faults, err := p.majorFaults()
	e2eenv.Must(t, err)
	record(t, "major_faults_"+when, faults, "pages", 0,
		"major page faults since start "+when+": pages read from the disk (the binary's pages handed back come back this way)")
	if pmd, err := filePmdMapped(p.pid); err == nil {
		record(t, "rss_file_pmd_mapped_"+when, pmd/1024, "MiB", 0,
			"FilePmdMapped "+when+": of RssFile, the binary's pages mapped as whole 2 MiB page-cache folios (the kernel maps a folio at once)")
	}
}

// filePmdMapped is the process's FilePmdMapped from smaps_rollup, in KiB.
func filePmdMapped(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "FilePmdMapped:"); ok {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
		}
	}
	return 0, fmt.Errorf("no FilePmdMapped")
}
