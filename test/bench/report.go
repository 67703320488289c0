package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is the JSON written under bench/results; the markdown is derived
// from it.
type report struct {
	Label           string           `json:"label,omitempty"`
	Started         time.Time        `json:"started"`
	DurationSeconds float64          `json:"durationSeconds"`
	Machine         machine          `json:"machine"`
	Settings        settings         `json:"settings"`
	Scales          []scaleResult    `json:"scales"`
	Sharing         *economyResult   `json:"sharing,omitempty"`
	Pods            *podsResult      `json:"unrelatedPods,omitempty"`
	PushFirst       *pushFirstResult `json:"pushFirst,omitempty"`
	Errors          []string         `json:"errors,omitempty"`
}

type machine struct {
	Host      string `json:"host"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	MemoryGiB int    `json:"memoryGiB"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"goVersion"`
}

type settings struct {
	PollIntervalSeconds float64 `json:"pollIntervalSeconds"`
	CVsPerRef           int     `json:"cvsPerRef"`
	PerNamespace        int     `json:"perNamespace"`
	KubeAPIQPS          int     `json:"kubeApiQps"`
	KubeAPIBurst        int     `json:"kubeApiBurst"`
	RegistryQPS         int     `json:"registryQps"`
	RegistryBurst       int     `json:"registryBurst"`
	ConcurrentSyncs     int     `json:"concurrentSyncs"`
	LastPolledSeconds   float64 `json:"lastPolledIntervalSeconds"`
	TriggerGapMs        float64 `json:"triggerGapMs"`
	LatencySamples      int     `json:"latencySamples"`
	Replicas            int     `json:"replicas"`
	// KCMAPIQPS and KCMAPIBurst are kube-controller-manager's client
	// budget (0 in runs from before it was recorded: 300 and 600).
	KCMAPIQPS   int `json:"kcmApiQps,omitempty"`
	KCMAPIBurst int `json:"kcmApiBurst,omitempty"`
	// KCMSyncs are its Deployment and ReplicaSet workers (0: not recorded,
	// 10).
	KCMSyncs int `json:"kcmDeploymentSyncs,omitempty"`
	// History is spec.history.enabled on every CV (false in runs from
	// before it was recorded: those wrote no history).
	History bool `json:"historyEnabled,omitempty"`
}

type scaleResult struct {
	CVs             int     `json:"cvs"`
	Refs            int     `json:"refs"`
	Namespaces      int     `json:"namespaces"`
	PopulateSeconds float64 `json:"populateSeconds"`
	// ControlPlaneSettleSeconds is the wait for kube-controller-manager to
	// finish with the new Deployments before the controller starts.
	ControlPlaneSettleSeconds float64         `json:"controlPlaneSettleSeconds"`
	Restart                   restartResult   `json:"restart"`
	Economy                   economyResult   `json:"economy"`
	Footprint                 footprintResult `json:"footprint"`
	// MetricsScrape is one GET /metrics after the steady interval.
	MetricsScrape  *scrapeResult `json:"metricsScrape,omitempty"`
	PollLatency    pushLatency   `json:"pollLatency"`
	TriggerLatency pushLatency   `json:"triggerLatency"`
	Burst          burstResult   `json:"burst"`
	// SteadyWritesPerSecond are the apiserver's writes to cvmanager's
	// resources per second over the steady interval: the background the
	// burst's writes per rollout leave out.
	SteadyWritesPerSecond map[string]float64 `json:"steadyWritesPerSecond,omitempty"`
	LoadBefore            string             `json:"loadBefore"`
	LoadAfter             string             `json:"loadAfter"`
	OtherProcesses        []string           `json:"otherProcesses,omitempty"`
	Profiles              []string           `json:"profiles,omitempty"`
}

// restartResult is observed from outside the controller: registry
// requests at the counting proxy, writes at the apiserver
// (apiserver_request_total), image changes by the bench's own watch.
type restartResult struct {
	ReadySeconds          float64 `json:"readySeconds"`
	PeakRequestsPerSecond int64   `json:"peakRequestsPerSecond"`
	MeanRequestsPerSecond float64 `json:"meanRequestsPerSecond"`
	BudgetQPS             int     `json:"budgetQps"`
	BudgetBurst           int     `json:"budgetBurst"`
	// HeadsFirstInterval are manifest HEADs at the proxy in the first
	// interval after ready; RegistryErrors its answers ≥ 400.
	HeadsFirstInterval int64 `json:"headsFirstInterval"`
	RegistryErrors     int64 `json:"registryErrors"`
	// AllRefsPolledSeconds: every distinct ref had a HEAD at the proxy
	// this long after ready (-1: not within two intervals).
	AllRefsPolledSeconds float64 `json:"allRefsPolledSeconds"`
	WorkloadsPatched     int64   `json:"workloadsPatched"`
	// Apiserver-side writes over the restart and steady intervals.
	DeploymentPatches float64 `json:"deploymentPatches"`
	HistoryWrites     float64 `json:"configMapWrites"`
	CVStatusWrites    float64 `json:"cvStatusWrites"`
}

type economyResult struct {
	CVs             int     `json:"cvs,omitempty"`
	IntervalSeconds float64 `json:"intervalSeconds"`
	DistinctRefs    int     `json:"distinctRefs"`
	Heads           int64   `json:"heads"`
	ManifestGets    int64   `json:"manifestGets"`
	TagLists        int64   `json:"tagLists"`
	StatusWrites    float64 `json:"cvStatusWrites"`
}

type footprintResult struct {
	CPUPercentIdle float64 `json:"cpuPercentIdle"`
	RSSMiB         float64 `json:"rssMiB"`
	// PeakRSSMiB is the largest VmRSS sampled within the steady interval.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	HeapMiB    float64 `json:"heapInuseMiB"`
	Goroutines float64 `json:"goroutines"`
}

type latencyResult struct {
	Samples  int     `json:"samples"`
	Expected int     `json:"expected"`
	Complete bool    `json:"complete"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
}

type burstResult struct {
	CVs            int           `json:"cvs"`
	Backlog        int           `json:"controlPlaneBacklog"`
	TriggerSeconds float64       `json:"triggerSeconds"`
	AllPatched     bool          `json:"allPatched"`
	AllFinished    bool          `json:"allFinished"`
	Patched        int           `json:"patched"`
	Finished       int           `json:"finished"`
	Patch          latencyResult `json:"patch"`
	Finish         latencyResult `json:"finish"`
	// Rolled is when the kube-controller-manager had observed each patched
	// template (the control plane's share, between patch and finish).
	Rolled       latencyResult `json:"rolledByControlPlane"`
	Apiserver429 float64       `json:"apiserver429"`
	PollErrors   int64         `json:"registryErrors"`
	// PeakRSSMiB is the largest VmRSS sampled from the moves to the end.
	PeakRSSMiB    float64     `json:"peakRssMiB"`
	SettleSeconds float64     `json:"settleSeconds"`
	Queue         queueResult `json:"queue"`
	// FinishQueue is the workqueue from all patched to all finished.
	FinishQueue queueResult `json:"finishQueue"`
	// WritesPerRollout are the apiserver's write requests to the resources
	// cvmanager writes, per "VERB resource", less BackgroundWrites, divided
	// by the burst's CVs.
	WritesPerRollout map[string]float64 `json:"writesPerRollout,omitempty"`
	// BackgroundWrites are the steady interval's write rates over the
	// burst's window: what the population writes anyway (lastPolled).
	BackgroundWrites map[string]float64 `json:"backgroundWrites,omitempty"`
	// CVWrites are the writes of each burst CV that landed until its
	// rollout finished, from the bench's watch: exact, where
	// WritesPerRollout's status writes are an estimate less the
	// population's background. StatusConflicts are the CV status writes
	// the apiserver refused with 409 in the window (any CV's).
	CVWrites        *countResult `json:"cvWrites,omitempty"`
	StatusConflicts float64      `json:"statusConflicts,omitempty"`
	// CPU is who used the machine's CPU from the triggers to the last
	// rollout finished: the finish waits on the control plane, which
	// shares the cores with cvmanager and the bench.
	CPU cpuUse `json:"cpu,omitempty"`
	// Events are the burst's RolloutStarted and RolloutSucceeded Events
	// that reached the apiserver, counted after the finish.
	Events eventsResult `json:"events,omitempty"`
}

// countResult is a per-item count over n items.
type countResult struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Max  int     `json:"max"`
}

func (c *countResult) add(v int) {
	c.Mean = (c.Mean*float64(c.N) + float64(v)) / float64(c.N+1)
	c.N++
	c.Max = max(c.Max, v)
}

type queueResult struct {
	Items      float64 `json:"items"`
	MeanWaitMs float64 `json:"meanWaitMs"`
	MeanWorkMs float64 `json:"meanWorkMs"`
}

func newReport(cfg *config) *report {
	return &report{
		Label: cfg.label, Started: time.Now().UTC(), Machine: readMachine(),
		Settings: settings{
			PollIntervalSeconds: cfg.pollInterval.Seconds(), CVsPerRef: cfg.cvsPerRef, PerNamespace: cfg.perNamespace,
			KubeAPIQPS: cfg.kubeQPS, KubeAPIBurst: cfg.kubeBurst, RegistryQPS: cfg.registryQPS,
			RegistryBurst: cfg.registryBurst, ConcurrentSyncs: cfg.workers,
			LastPolledSeconds: cfg.lastPolled.Seconds(), TriggerGapMs: float64(cfg.triggerGap.Milliseconds()),
			LatencySamples: cfg.latencySamples, KCMAPIQPS: cfg.kcmQPS, KCMAPIBurst: cfg.kcmBurst, KCMSyncs: cfg.kcmSyncs,
			History: cfg.history,
		},
	}
}

// base names the run's files: <date>-<host>[-label].
func (r *report) base() string {
	base := r.Started.Format("2006-01-02T1504") + "-" + r.Machine.Host
	if r.Label != "" {
		base += "-" + r.Label
	}
	return base
}

// write saves <base>.json and .md, and latest.md.
func (r *report) write(dir string) error {
	r.DurationSeconds = time.Since(r.Started).Seconds()
	if err := ensureDir(dir); err != nil {
		return err
	}
	base := r.base()
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	md := r.markdown()
	for name, data := range map[string][]byte{base + ".json": js, base + ".md": []byte(md), "latest.md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Print(md)
	say("report written to %s", filepath.Join(dir, base+".json"))
	return nil
}

func ensureDir(dir string) error { return os.MkdirAll(dir, 0o755) }

func readMachine() machine {
	host, _ := os.Hostname()
	m := machine{Host: host, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kib)
		m.MemoryGiB = (kib + (1 << 19)) >> 20
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures: the machine is
// shared, so every figure is read next to its load.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// busyProcesses names the processes using the most CPU, to tell the
// bench's own load from other work on the machine.
func busyProcesses() []string {
	out, err := exec.Command("ps", "-eo", "pcpu,rss,comm", "--sort=-pcpu").Output()
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 9 {
		lines = lines[1:9]
	}
	for i := range lines {
		lines[i] = strings.Join(strings.Fields(lines[i]), " ")
	}
	return lines
}

// scrapeResult is one GET /metrics of the controller once its history
// cache has expired (a minute after the last read): the DORA series read
// every CV's histories, which the apiserver counts as ConfigMap GETs (by
// name) and LISTs (a namespace by label).
type scrapeResult struct {
	Ms             float64 `json:"ms"`
	ConfigMapGets  float64 `json:"configMapGets"`
	ConfigMapLists float64 `json:"configMapLists"`
	// DORASeries says whether the scrape carried the DORA series (a read
	// that timed out leaves them out).
	DORASeries bool `json:"doraSeries"`
}
