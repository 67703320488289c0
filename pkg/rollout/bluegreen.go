package rollout

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Blue-green steps, reported in status.rollout.step.
const (
	StepSecondaryUpdated = "SecondaryUpdated"
	StepSecondaryReady   = "SecondaryReady"
	StepVerified         = "SecondaryVerified"
	StepScaledUp         = "SecondaryScaledUp"
	StepSwitched         = "Switched"
)

// BlueGreen runs the new version in the Deployment the live Service does
// not select (the secondary), checks it, and then switches the Service.
//
// It keeps no state of its own: which Deployment is primary is read from
// the live Service's selector on every call, and every step first looks
// whether it is already done. Until the switch, live traffic is never
// touched; the switch happens only after the secondary is fully Ready and
// verified.
type BlueGreen struct {
	Jobs *Jobs
}

// Name implements Strategy.
func (b *BlueGreen) Name() string { return cvv1.StrategyServiceBlueGreen }

// pair is the live Service and the two Deployments behind it.
type pair struct {
	spec                     *cvv1.BlueGreenSpec
	live, verification       *corev1.Service
	primary, secondary       workload.Workload
	primaryDep, secondaryDep *appsv1.Deployment
}

// blueGreenSteps in the order a rollout passes them.
var blueGreenSteps = []string{StepSecondaryUpdated, StepSecondaryReady, StepVerified, StepScaledUp, StepSwitched}

func recordedStep(cv *cvv1.ContainerVersion) string {
	if cv.Status.Rollout == nil {
		return ""
	}
	return cv.Status.Rollout.Step
}

// notBefore keeps the reported step from going backwards. Every call
// re-derives the steps from the cluster, and scaling the secondary up
// makes it un-Ready again for a while, so the derivation alone would show
// SecondaryUpdated after SecondaryScaledUp. The message still tells what
// is awaited; the step says how far the rollout has come.
func notBefore(recorded, derived string) string {
	r, d := slices.Index(blueGreenSteps, recorded), slices.Index(blueGreenSteps, derived)
	if r > d && d >= 0 {
		return recorded
	}
	return derived
}

func (p pair) keys() []string { return []string{p.primary.Key(), p.secondary.Key()} }

// selectorFor is the selector (the labelNames keys only) that makes svc
// select d's pods, and whether svc's selector differs from it.
func selectorFor(svc *corev1.Service, d *appsv1.Deployment, labelNames []string) (map[string]string, bool) {
	selector := map[string]string{}
	changed := false
	for _, l := range labelNames {
		selector[l] = d.Spec.Template.Labels[l]
		changed = changed || svc.Spec.Selector[l] != selector[l]
	}
	return selector, changed
}

// twoDeploymentsOf is twoDeployments over workloads already selected.
func twoDeploymentsOf(cv *cvv1.ContainerVersion, workloads []workload.Workload) ([]*appsv1.Deployment, Progress) {
	var deployments []*appsv1.Deployment
	var keys []string
	for _, w := range workloads {
		keys = append(keys, w.Key())
		if d, ok := w.Object.(*appsv1.Deployment); ok {
			deployments = append(deployments, d)
		}
	}
	if len(deployments) != 2 || len(workloads) != 2 {
		return nil, misconfigured("NotTwoDeployments",
			"blue-green needs exactly two Deployments matching selector %s in namespace %s, found %d workload(s): %s; nothing was changed",
			metav1.FormatLabelSelector(cv.Spec.Selector), cv.Namespace, len(workloads), orNothing(keys))
	}
	return deployments, Progress{}
}

// assign decides which Deployment is primary from the live Service, after
// checking that the labels exist and tell the two apart.
func (p pair) assign(ds []*appsv1.Deployment, container string) (pair, Progress, error) {
	for _, d := range ds {
		w := workload.Workload{Kind: workload.Deployment, Object: d}
		if _, found := workload.ContainerImage(w, container); !found {
			return p, misconfigured("ContainerNotFound", "container %q not found in %s; nothing was changed", container, w.Key()), nil
		}
		for _, l := range p.spec.LabelNames {
			if _, ok := d.Spec.Template.Labels[l]; !ok {
				return p, misconfigured("LabelMissing", "Deployment/%s pod template has no label %q named in strategy.blueGreen.labelNames; nothing was changed", d.Name, l), nil
			}
		}
	}
	for _, l := range p.spec.LabelNames {
		if _, ok := p.live.Spec.Selector[l]; !ok {
			return p, misconfigured("ServiceSelectorMissingLabel", "Service %s selector has no label %q named in strategy.blueGreen.labelNames; nothing was changed", p.live.Name, l), nil
		}
	}
	if sameValues(ds[0].Spec.Template.Labels, ds[1].Spec.Template.Labels, p.spec.LabelNames) {
		return p, misconfigured("LabelsNotDistinct", "Deployment/%s and Deployment/%s have the same values for labels %s: the Service cannot tell them apart; nothing was changed",
			ds[0].Name, ds[1].Name, strings.Join(p.spec.LabelNames, ",")), nil
	}
	for i, d := range ds {
		if sameValues(d.Spec.Template.Labels, p.live.Spec.Selector, p.spec.LabelNames) {
			other := ds[1-i]
			p.primaryDep, p.secondaryDep = d, other
			p.primary = workload.Workload{Kind: workload.Deployment, Object: d}
			p.secondary = workload.Workload{Kind: workload.Deployment, Object: other}
			return p, Progress{}, nil
		}
	}
	return p, misconfigured("ServiceSelectsNeither", "Service %s selects neither Deployment/%s nor Deployment/%s on labels %s; nothing was changed",
		p.live.Name, ds[0].Name, ds[1].Name, strings.Join(p.spec.LabelNames, ",")), nil
}

func sameValues(a, b map[string]string, keys []string) bool {
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func orNothing(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

func done(step string) Progress { return Progress{Phase: Succeeded, Step: step} }
