// Command bench is `make bench`: cvmanager's performance suite. It starts
// the local control plane (test/controlplane) and an in-process registry
// (test/localregistry) behind a counting proxy, fills them with N
// ContainerVersions over N/10 image refs, runs the real `cvmanager run`
// binary as a separate process against them, and measures what issue #9
// asks: registry requests per poll interval, detection latency by poll and
// by trigger, a burst of tag moves, the controller's footprint, a restart,
// and how all of it grows from 100 to 10,000 CVs; last, the push-first
// economy: refs a registry announces are polled only at a safety interval.
//
// Figures are reported (markdown and JSON under bench/results), never
// asserted: the machine is shared and numbers move with its load, which
// the report records next to them.
//
//	go run ./test/bench -scales 100,1000,10000
//
// Every process the bench starts is recorded by PID and stopped on exit,
// also on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// config holds the bench's flags.
type config struct {
	scales         []int
	cvsPerRef      int
	perNamespace   int
	burst          int
	pollInterval   time.Duration
	latencyRefs    int
	latencySamples int
	triggerRefs    int
	triggerGap     time.Duration
	lastPolled     time.Duration
	sharingCVs     int
	kubeQPS        int
	kubeBurst      int
	registryQPS    int
	registryBurst  int
	workers        int
	kcmQPS         int
	kcmSyncs       int
	kcmBurst       int
	history        bool
	bin            string
	out            string
	label          string
	// runName is the run's results file name without extension, which
	// its profiles are named after (set once the report exists).
	runName       string
	profile       bool
	unrelatedPods []int
	podsWindow    time.Duration
	skip          map[string]bool
	docs          bool
	render        string
	// The push-first figure (8).
	pushFirstRefs     int
	pushFirstInterval time.Duration
	pushFirstGap      time.Duration
}

func parseFlags() (*config, error) {
	c := &config{}
	scales := flag.String("scales", "100,1000,10000", "CV counts to measure, ascending; the population grows from one to the next")
	flag.IntVar(&c.cvsPerRef, "cvs-per-ref", 10, "CVs following each repo:tag (10 gives 10,000 CVs over 1,000 refs)")
	flag.IntVar(&c.perNamespace, "per-namespace", 1000, "CVs (and Deployments) per namespace")
	flag.IntVar(&c.burst, "burst", 1000, "CVs whose tags move at once in the burst figure (capped at the scale)")
	flag.DurationVar(&c.pollInterval, "poll-interval", time.Minute, "spec.pollIntervalSeconds of every CV")
	flag.IntVar(&c.latencyRefs, "latency-refs", 50, "refs moved per round to measure detection latency by poll")
	flag.IntVar(&c.triggerRefs, "trigger-refs", 20, "refs pushed and triggered per round to measure detection latency by trigger")
	flag.IntVar(&c.latencySamples, "latency-samples", 200, "CVs measured per latency figure at least (rounds repeat, at most 10)")
	flag.DurationVar(&c.triggerGap, "trigger-gap", time.Second, "time between two CI triggers in the latency figure (the burst figure measures throughput)")
	flag.DurationVar(&c.lastPolled, "last-polled-interval", 15*time.Minute, "controller's --last-polled-interval; the population's lastPolled is spread over it, as steady state leaves it")
	flag.IntVar(&c.sharingCVs, "sharing-cvs", 1000, "CVs of the 50%-sharing economy check (0 skips it)")
	flag.IntVar(&c.kubeQPS, "kube-api-qps", 200, "controller's --kube-api-qps")
	flag.IntVar(&c.kubeBurst, "kube-api-burst", 400, "controller's --kube-api-burst")
	flag.IntVar(&c.registryQPS, "registry-qps", 50, "controller's --registry-qps (per-host budget)")
	flag.IntVar(&c.registryBurst, "registry-burst", 50, "controller's --registry-burst")
	flag.IntVar(&c.workers, "concurrent-syncs", 16, "controller's --concurrent-syncs (syncs are API round trips, not CPU: 16 keep a burst moving)")
	flag.IntVar(&c.kcmQPS, "kcm-api-qps", 1000, "kube-controller-manager's --kube-api-qps (its default, 20, would bound rollouts, not cvmanager; at 300 it still bounded a burst's finish among 10,000 CVs)")
	flag.IntVar(&c.kcmBurst, "kcm-api-burst", 2000, "kube-controller-manager's --kube-api-burst")
	flag.IntVar(&c.kcmSyncs, "kcm-deployment-syncs", 10, "kube-controller-manager's --concurrent-deployment-syncs and --concurrent-replicaset-syncs (10 as in the tests' control plane)")
	flag.BoolVar(&c.history, "history", true, "spec.history.enabled on every CV: each rollout appends to its workload's history ConfigMap, as the write budget of a Simple rollout with history assumes")
	flag.StringVar(&c.bin, "cvmanager", "", "prebuilt cvmanager binary (default: go build ./cmd/cvmanager)")
	flag.StringVar(&c.out, "out", "bench/results", "directory for the JSON, markdown and profiles")
	flag.StringVar(&c.label, "label", "", "label for this run in the report (e.g. before-fix)")
	flag.BoolVar(&c.profile, "profile", true, "fetch CPU and heap profiles at the largest scale")
	pods := flag.String("unrelated-pods", "2000,20000", "after the largest scale, grow a population of pods no CV selects to each count, ascending, and measure the controller's RSS after each (\"\" skips)")
	flag.DurationVar(&c.podsWindow, "pods-window", 30*time.Second, "window sampled for each count of -unrelated-pods")
	flag.IntVar(&c.pushFirstRefs, "push-first-refs", 100, "refs (one CV each) announced by the registry's own push notifications in the push-first figure, and as many refs only polled")
	flag.DurationVar(&c.pushFirstInterval, "push-first-interval", 5*time.Second, "spec.pollIntervalSeconds of the push-first figure's CVs (the safety interval is 10x)")
	flag.DurationVar(&c.pushFirstGap, "push-first-gap", 100*time.Millisecond, "time between two announced pushes in the push-first figure")
	flag.BoolVar(&c.docs, "docs", false, "measure nothing: regenerate docs/performance.md's targets table from the newest results file (run from the repository root)")
	flag.StringVar(&c.render, "render", "", "measure nothing: render the markdown of this results JSON again, next to it")
	skip := flag.String("skip", "", "scenarios to leave out, comma-separated: latency, trigger, burst, push-first, push-path, writeback (the steady interval always runs)")
	flag.Parse()
	var err error
	if c.pushFirstInterval < 5*time.Second || c.pushFirstRefs < 0 {
		return nil, fmt.Errorf("-push-first-interval must be at least 5s (the CRD's minimum) and -push-first-refs not negative")
	}
	if c.scales, err = ascending("-scales", *scales); err != nil {
		return nil, err
	}
	if *pods != "" {
		if c.unrelatedPods, err = ascending("-unrelated-pods", *pods); err != nil {
			return nil, err
		}
	}
	c.skip = map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.skip[s] = true
		}
	}
	return c, nil
}

// ascending parses a comma-separated list of positive, ascending counts.
func ascending(name, list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number", name, s)
		}
		if len(out) > 0 && n < out[len(out)-1] {
			return nil, fmt.Errorf("%s must be ascending", name)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	klog.SetOutput(os.Stderr)
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if cfg.docs || cfg.render != "" {
		if err := offline(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*fleetOnly {
		if err := run(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *writeBackOnly {
		return
	}
	if err := runFleet(ctx, cfg); err != nil { // fleet.go
		fmt.Fprintln(os.Stderr, "bench: fleet:", err)
		os.Exit(1)
	}
}

// say prints a progress line with the time since the bench started.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] "+format+"\n", append([]any{time.Since(benchStart).Seconds()}, args...)...)
}

var benchStart = time.Now()

// run measures every scale on one control plane, growing the population
// between scales, and writes the report even when a later scale fails.
func run(ctx context.Context, cfg *config) error {
	env, err := startEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.stop()
	if *pushPathOnly {
		_, err := measurePushPath(ctx, env, cfg)
		return err
	}
	if *writeBackOnly {
		_, err := measureWriteBack(ctx, env, cfg) // writeback.go
		return err
	}
	rep := newReport(cfg)
	cfg.runName = rep.base()
	defer func() {
		if err := rep.write(cfg.out); err != nil {
			say("writing the report: %v", err)
		}
	}()
	pop := newPopulation(env, cfg)
	for _, n := range cfg.scales {
		res, err := measureScale(ctx, env, pop, n)
		if res != nil {
			rep.Scales = append(rep.Scales, *res)
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("scale %d: %v", n, err))
			return err
		}
	}
	if len(cfg.unrelatedPods) > 0 {
		res, err := measurePods(ctx, env, cfg.scales[len(cfg.scales)-1])
		rep.Pods = res
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("unrelated pods: %v", err))
			return err
		}
	}
	if cfg.sharingCVs > 0 {
		res, err := measureSharing(ctx, env, cfg)
		rep.Sharing = res
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("sharing: %v", err))
			return err
		}
	}
	if cfg.pushFirstRefs > 0 && !cfg.skip["push-first"] {
		res, err := measurePushFirst(ctx, env, cfg)
		rep.PushFirst = res
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("push-first: %v", err))
			return err
		}
	}
	if !cfg.skip["push-path"] {
		// Written to its own <date>-push.json/.md (test/bench/pushpath.go).
		if _, err := measurePushPath(ctx, env, cfg); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("push-path: %v", err))
			return err
		}
	}
	if !cfg.skip["writeback"] {
		// Written to its own <date>-writeback-finish.json/.md (writeback.go).
		if _, err := measureWriteBack(ctx, env, cfg); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("writeback: %v", err))
			return err
		}
	}
	return nil
}

// offline runs -docs or -render: nothing is measured.
func offline(cfg *config) error {
	if cfg.render != "" {
		var r report
		if err := readJSON(cfg.render, &r); err != nil {
			return err
		}
		return os.WriteFile(strings.TrimSuffix(cfg.render, ".json")+".md", []byte(r.markdown()), 0o644)
	}
	return writeDocs(".")
}
