package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"cvmanager.dev/cvmanager/test/controlplane"
)

// podsResult is the footprint figure with a population of pods no CV
// selects (bare pods on the kwok node, Running, the size of a real pod):
// a controller's memory must not grow with the cluster's pods.
type podsResult struct {
	CVs           int       `json:"cvs"`
	WindowSeconds float64   `json:"windowSeconds"`
	Steps         []podStep `json:"steps"`
	// Restarted is a new controller process started once every pod exists:
	// its informers list the cluster as it is, as in a real install.
	Restarted *podStep `json:"restarted,omitempty"`
}

// podStep is one window with Pods unrelated pods in the cluster.
type podStep struct {
	Pods          int     `json:"pods"`
	Running       int     `json:"running"`
	CreateSeconds float64 `json:"createSeconds,omitempty"`
	ReadySeconds  float64 `json:"readySeconds,omitempty"`
	RSSMiB        float64 `json:"rssMiB"`
	PeakRSSMiB    float64 `json:"peakRssMiB"`
	HeapMiB       float64 `json:"heapInuseMiB"`
	CPUPercent    float64 `json:"cpuPercent"`
}

// podsPerNamespace spreads the unrelated pods as a cluster does.
const podsPerNamespace = 1000

// measurePods (figure 7) runs a fresh controller over the scale's CVs,
// measures a window with no unrelated pods, then grows the pod population
// to each of -unrelated-pods and measures a window after each, and last
// restarts the controller in the full cluster.
func measurePods(ctx context.Context, e *env, cvs int) (*podsResult, error) {
	cfg := e.cfg
	res := &podsResult{CVs: cvs, WindowSeconds: cfg.podsWindow.Seconds()}
	proc, err := startController(e, fmt.Sprintf("cvmanager-pods-%d", cvs))
	if err != nil {
		return res, err
	}
	defer proc.stop(cfg.out)
	ready, err := proc.waitReady(ctx, 5*time.Minute)
	if err != nil {
		return res, err
	}
	step, err := podWindow(ctx, e, proc, 0)
	step.ReadySeconds = ready.Seconds()
	res.Steps = append(res.Steps, step)
	if err != nil {
		return res, err
	}
	have := 0
	for _, want := range cfg.unrelatedPods {
		say("pods: growing the unrelated pods from %d to %d", have, want)
		begin := time.Now()
		if err := createPods(ctx, e, have, want); err != nil {
			return res, err
		}
		created := since(begin)
		have = want
		step, err := podWindow(ctx, e, proc, want)
		step.CreateSeconds = created
		res.Steps = append(res.Steps, step)
		if err != nil {
			return res, err
		}
	}
	proc.stop(cfg.out)
	return res, measureRestartedWithPods(ctx, e, res, have)
}

// measureRestartedWithPods starts a new controller in the populated
// cluster and measures one window.
func measureRestartedWithPods(ctx context.Context, e *env, res *podsResult, pods int) error {
	proc, err := startController(e, fmt.Sprintf("cvmanager-pods-%d-restarted", res.CVs))
	if err != nil {
		return err
	}
	defer proc.stop(e.cfg.out)
	ready, err := proc.waitReady(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	step, err := podWindow(ctx, e, proc, pods)
	step.ReadySeconds = ready.Seconds()
	res.Restarted = &step
	return err
}

// podWindow waits for the pods to run (kwok marks them Running), then
// samples the controller over one window.
func podWindow(ctx context.Context, e *env, proc *ctrlProc, pods int) (podStep, error) {
	step := podStep{Pods: pods}
	if pods > 0 {
		waitFor(ctx, 10*time.Minute, func() bool { return pendingPods(ctx, e, pods) == 0 })
		step.Running = pods - pendingPods(ctx, e, pods)
	}
	w := watchRSS(ctx, proc)
	if !sleepCtx(ctx, e.cfg.podsWindow) {
		return step, ctx.Err()
	}
	f := w.close(proc)
	step.RSSMiB, step.PeakRSSMiB, step.CPUPercent = f.RSSMiB, f.PeakRSSMiB, f.CPUPercent
	step.HeapMiB = proc.metric("go_memstats_heap_inuse_bytes") / (1 << 20)
	say("pods: %d unrelated pods (%d running): RSS %.0f MiB, peak %.0f MiB in the window, heap %.0f MiB",
		pods, step.Running, step.RSSMiB, step.PeakRSSMiB, step.HeapMiB)
	return step, nil
}

// pendingPods counts the unrelated pods not yet Running, read from the
// apiserver's watch cache (ResourceVersion 0), one namespace at a time.
func pendingPods(ctx context.Context, e *env, pods int) int {
	n := 0
	for ns := 0; ns*podsPerNamespace < pods; ns++ {
		list, err := e.kube.CoreV1().Pods(podNamespace(ns)).List(ctx, metav1.ListOptions{
			FieldSelector: "status.phase!=Running", ResourceVersion: "0"})
		if err != nil {
			return pods
		}
		n += len(list.Items)
	}
	return n
}

func podNamespace(i int) string { return fmt.Sprintf("unrelated-%02d", i) }

// createPods creates unrelated pods from..to-1.
func createPods(ctx context.Context, e *env, from, to int) error {
	for ns := from / podsPerNamespace; ns*podsPerNamespace < to; ns++ {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNamespace(ns)}}
		if _, err := e.kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return parallel(ctx, 48, to-from, func(k int) error {
		i := from + k
		_, err := e.kube.CoreV1().Pods(podNamespace(i/podsPerNamespace)).Create(ctx, unrelatedPod(i), metav1.CreateOptions{})
		return err
	})
}

// unrelatedPod is a pod the size of one a Deployment makes in a real
// cluster (labels, env, resources, probes, the service-account token
// volume), bound to the kwok node so no scheduler work is measured.
func unrelatedPod(i int) *corev1.Pod {
	name := fmt.Sprintf("other-%05d", i)
	app := fmt.Sprintf("other-%03d", i%200)
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 10, TimeoutSeconds: 1}
	var env []corev1.EnvVar
	for k := range 6 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", k), Value: fmt.Sprintf("value-%d-%s", k, app)})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{"app": app, "pod-template-hash": "5d8f7c9b6d", "tier": "backend"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
		Spec: corev1.PodSpec{
			NodeName:                      controlplane.NodeName,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name: "app", Image: fmt.Sprintf("registry.example/team/%s:1.%d.0", app, i%50),
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
				Env:   env,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
				ReadinessProbe: probe, LivenessProbe: probe,
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: app}}}}},
		},
	}
}
