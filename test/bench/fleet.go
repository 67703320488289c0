package main

// The fleet figure (issue 34): how long the fleet view takes with
// -fleet-clusters control planes of -fleet-cvs ContainerVersions each, by
// the CLI (`cvmanager status --contexts`, the real binary, cold, one LIST
// per cluster) and by the dashboard's fleet page (a real `cvmanager run`
// per cluster, the first showing the others through --fleet-peer).
// Results go to <out>/<date>-fleet.json and .md, apart from the main
// report. `go run ./test/bench -fleet-only` runs this figure alone.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
)

var (
	fleetOnly     = flag.Bool("fleet-only", false, "run only the fleet figure")
	fleetClusters = flag.Int("fleet-clusters", 3, "control planes of the fleet figure (0 skips it)")
	fleetCVs      = flag.Int("fleet-cvs", 200, "ContainerVersions per cluster in the fleet figure")
	fleetRounds   = flag.Int("fleet-rounds", 10, "measurements of each fleet view")
)

// Targets of the fleet figure (issue 34).
const (
	fleetStatusTarget = time.Second
	fleetPageTarget   = time.Second
)

// fleetResult is the fleet figure as written to <date>-fleet.json.
type fleetResult struct {
	Time        time.Time `json:"time"`
	Clusters    int       `json:"clusters"`
	CVsEach     int       `json:"cvsPerCluster"`
	Rounds      int       `json:"rounds"`
	StatusMs    latencyMs `json:"statusContextsMs"`
	PageMs      latencyMs `json:"fleetPageMs"`
	PageBytes   int       `json:"fleetPageBytes"`
	PageRows    int       `json:"fleetPageRows"`
	StatusLines int       `json:"statusLines"`
	Load        string    `json:"load"`
	Errors      []string  `json:"errors,omitempty"`
}

type latencyMs struct {
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// runFleet starts the clusters, fills them, measures both views and
// writes the results; everything started is stopped on return.
func runFleet(ctx context.Context, cfg *config) error {
	if *fleetClusters <= 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "cvmanager-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildController(ctx, cfg.bin, dir)
	if err != nil {
		return err
	}
	binDir, err := controlPlaneBins(ctx)
	if err != nil {
		return err
	}
	res := &fleetResult{Time: time.Now().UTC(), Clusters: *fleetClusters, CVsEach: *fleetCVs, Rounds: *fleetRounds}
	defer func() {
		if err := writeFleet(cfg.out, res); err != nil {
			say("fleet: writing the results: %v", err)
		}
	}()
	var cps []*controlplane.ControlPlane
	defer func() {
		for _, cp := range cps {
			_ = cp.Stop()
		}
	}()
	kc := clientcmdapi.NewConfig()
	var names []string
	for i := 0; i < *fleetClusters; i++ {
		name := fmt.Sprintf("cluster-%d", i+1)
		say("fleet: starting %s", name)
		cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: binDir, Log: os.Stderr})
		if err != nil {
			return err
		}
		cps = append(cps, cp)
		if err := fillCluster(ctx, cp, i); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		src, err := clientcmd.LoadFromFile(cp.KubeconfigPath())
		if err != nil {
			return err
		}
		for k, v := range src.Clusters {
			kc.Clusters[name] = v
			kc.AuthInfos[name] = src.AuthInfos[src.Contexts[k].AuthInfo]
			if kc.AuthInfos[name] == nil {
				kc.AuthInfos[name] = src.AuthInfos["user"]
			}
		}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		names = append(names, name)
	}
	kc.CurrentContext = names[0]
	kubeconfig := filepath.Join(dir, "fleet.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}
	if err := measureFleetStatus(ctx, bin, kubeconfig, names, res); err != nil {
		res.Errors = append(res.Errors, err.Error())
		return err
	}
	if err := measureFleetPage(ctx, bin, dir, cps, names, res); err != nil {
		res.Errors = append(res.Errors, err.Error())
		return err
	}
	return nil
}

// fillCluster creates -fleet-cvs suspended CVs with a Deployment of 0
// replicas each (no registry, no pods: the view is measured, not
// rollouts) and writes each CV's status as a controller would: a version
// per cluster, so some rows differ.
func fillCluster(ctx context.Context, cp *controlplane.ControlPlane, index int) error {
	admin := cp.AdminConfig()
	admin.QPS, admin.Burst = 2000, 4000
	kube, cvs := kubernetes.NewForConfigOrDie(admin), versioned.NewForConfigOrDie(admin)
	if _, err := kubetest.InstallCRDs(ctx, admin); err != nil {
		return err
	}
	const ns = "fleet"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	since := metav1.NewTime(time.Now().Add(-time.Duration(index+1) * time.Hour))
	for j := 0; j < *fleetCVs; j++ {
		name := fmt.Sprintf("svc-%03d", j)
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "127.0.0.1:1/fleet/" + name + ":v1"}}}}}}
		if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return err
		}
		cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cvv1.ContainerVersionSpec{ImageRepo: "127.0.0.1:1/fleet/" + name, Tag: "env", Suspend: true,
				Selector: &metav1.LabelSelector{MatchLabels: labels}, Container: cvv1.ContainerSpec{Name: "app"}}}
		created, err := cvs.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		version := "v" + strconv.Itoa(1+(j+index)%3)
		created.Status = cvv1.ContainerVersionStatus{CurrVersion: version, CurrDigest: "sha256:" + strings.Repeat(strconv.Itoa(index), 64),
			CurrStatus: cvv1.StatusSuccess, CurrStatusTime: &since, SuccessVersion: version}
		if _, err := cvs.CvmanagerV1alpha1().ContainerVersions(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// measureFleetStatus runs `cvmanager status --contexts` as a user would.
func measureFleetStatus(ctx context.Context, bin, kubeconfig string, names []string, res *fleetResult) error {
	var times []time.Duration
	for r := 0; r < *fleetRounds; r++ {
		start := time.Now()
		out, err := exec.CommandContext(ctx, bin, "status", "--kubeconfig", kubeconfig, "--contexts", strings.Join(names, ",")).CombinedOutput()
		times = append(times, time.Since(start))
		if err != nil {
			return fmt.Errorf("status --contexts: %v\n%s", err, out)
		}
		res.StatusLines = strings.Count(string(out), "\n")
		if strings.Contains(string(out), "unreachable") {
			return fmt.Errorf("status --contexts found a cluster unreachable:\n%s", out)
		}
	}
	res.StatusMs = msSummary(times)
	say("fleet: status --contexts over %d clusters × %d CVs: median %.0f ms, max %.0f ms (%d lines)",
		len(names), *fleetCVs, res.StatusMs.Median, res.StatusMs.Max, res.StatusLines)
	return nil
}

// measureFleetPage runs `cvmanager run` on every cluster, the first with
// the others as peers, waits until its fleet page has read them all, then
// times the page.
func measureFleetPage(ctx context.Context, bin, dir string, cps []*controlplane.ControlPlane, names []string, res *fleetResult) error {
	procs := make([]*ctrlProc, len(cps))
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-p.done:
				case <-time.After(15 * time.Second):
					_ = p.cmd.Process.Kill()
					<-p.done
				}
			}
		}
	}()
	for i := len(cps) - 1; i >= 0; i-- { // peers first, so the viewer can name their ports
		var extra []string
		if i == 0 {
			extra = append(extra, "--fleet-name", names[0], "--fleet-refresh-interval", "2s")
			for k := 1; k < len(cps); k++ {
				extra = append(extra, "--fleet-peer", names[k]+"=http://"+procs[k].addr)
			}
		}
		p, err := startPlainController(bin, dir, names[i], cps[i].KubeconfigPath(), extra...)
		if err != nil {
			return err
		}
		procs[i] = p
		if _, err := p.waitReady(ctx, 60*time.Second); err != nil {
			return err
		}
	}
	want := *fleetCVs
	ok := waitFor(ctx, 60*time.Second, func() bool {
		body, err := procs[0].get(fmt.Sprintf("%s?format=json", "/v1/cv/fleet"))
		var m fleet.Matrix
		if err != nil || json.Unmarshal([]byte(body), &m) != nil || len(m.Rows) < want {
			return false
		}
		for _, c := range m.Clusters {
			if c.Error != "" {
				return false
			}
		}
		for _, r := range m.Rows {
			for _, cell := range r.Cells {
				if cell == nil {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("the fleet page never showed %d clusters × %d CVs (log %s):\n%s", len(cps), want, procs[0].logPath, tail(procs[0].logPath))
	}
	var times []time.Duration
	for r := 0; r < *fleetRounds; r++ {
		start := time.Now()
		body, err := procs[0].get("/v1/cv/fleet?format=html")
		times = append(times, time.Since(start))
		if err != nil {
			return err
		}
		res.PageBytes, res.PageRows = len(body), strings.Count(body, "<tr data-namespace=")
	}
	res.PageMs = msSummary(times)
	res.Load = loadAverage()
	say("fleet: fleet page over %d clusters × %d CVs: median %.0f ms, max %.0f ms (%d rows, %d bytes)",
		len(cps), *fleetCVs, res.PageMs.Median, res.PageMs.Max, res.PageRows, res.PageBytes)
	return nil
}

// startPlainController runs `cvmanager run` with the admin kubeconfig and
// no registry (every CV is suspended), in its own process group.
func startPlainController(bin, dir, name, kubeconfig string, extra ...string) (*ctrlProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"run", "--kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1",
		"--port", strconv.Itoa(port), "--configmap-key="}, extra...)
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &ctrlProc{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), logPath: logPath, done: make(chan struct{}), started: time.Now()}
	go func() { _ = cmd.Wait(); close(p.done) }()
	say("fleet: started cvmanager for %s (pid %d) on %s", name, cmd.Process.Pid, p.addr)
	return p, nil
}

func msSummary(ds []time.Duration) latencyMs {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return latencyMs{Median: ms(s[len(s)/2]), Max: ms(s[len(s)-1])}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// writeFleet writes <out>/<date>-fleet.json and .md.
func writeFleet(out string, r *fleetResult) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	base := filepath.Join(out, r.Time.Format("2006-01-02T1504")+"-fleet")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return err
	}
	verdict := func(got float64, target time.Duration) string {
		if got <= ms(target) {
			return "within"
		}
		return "over"
	}
	md := fmt.Sprintf(`# Fleet view, %d clusters × %d ContainerVersions

%s, load average %s, %d rounds each.

| view | median | max | target | |
|---|---|---|---|---|
| `+"`cvmanager status --contexts`"+` (binary, cold, one LIST per cluster; %d lines) | %.0f ms | %.0f ms | ≤ %s | %s |
| fleet page `+"`/v1/cv/fleet`"+` (HTML, %d rows, %d bytes, peers read in the background) | %.0f ms | %.0f ms | ≤ %s | %s |
`, r.Clusters, r.CVsEach, r.Time.Format(time.RFC3339), r.Load, r.Rounds,
		r.StatusLines, r.StatusMs.Median, r.StatusMs.Max, fleetStatusTarget, verdict(r.StatusMs.Max, fleetStatusTarget),
		r.PageRows, r.PageBytes, r.PageMs.Median, r.PageMs.Max, fleetPageTarget, verdict(r.PageMs.Max, fleetPageTarget))
	for _, e := range r.Errors {
		md += "\nerror: " + e + "\n"
	}
	return os.WriteFile(base+".md", []byte(md), 0o644)
}
