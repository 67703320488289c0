package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

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
	Client  kubernetes.Interface
	Listers workload.Listers
	Jobs    *Jobs
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

// Advance implements Strategy.
func (b *BlueGreen) Advance(ctx context.Context, cv *cvv1.ContainerVersion, target Target) (Progress, error) {
	p, bad, err := b.load(ctx, cv)
	if err != nil || bad.Phase == Failed {
		return bad, err
	}
	container := cv.Spec.Container.Name
	if image, _ := workload.ContainerImage(p.primary, container); image == target.Image {
		return b.finish(ctx, p)
	}
	steps := []func(context.Context, *cvv1.ContainerVersion, pair, Target) (Progress, error){
		b.updateSecondary, b.awaitSecondary, b.verify, b.scaleUp, b.switchService,
	}
	for _, step := range steps {
		progress, err := step(ctx, cv, p, target)
		if err != nil || progress.Phase != Succeeded {
			progress.Workloads = p.keys()
			progress.Step = notBefore(recordedStep(cv), progress.Step)
			return progress, err
		}
	}
	return Progress{Phase: InProgress, Step: StepSwitched, Reason: StepSwitched, Workloads: p.keys(),
		Message: fmt.Sprintf("Service %s switched to %s", p.live.Name, p.secondary.Key())}, nil
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

// updateSecondary pins the new image in the secondary and points the
// verification Service at it.
func (b *BlueGreen) updateSecondary(ctx context.Context, cv *cvv1.ContainerVersion, p pair, target Target) (Progress, error) {
	if _, err := workload.PatchImage(ctx, b.Client, p.secondary, cv.Spec.Container.Name, target.Image); err != nil {
		return Progress{}, fmt.Errorf("updating %s: %w", p.secondary.Key(), err)
	}
	if p.verification != nil {
		if err := b.pointAt(ctx, p.verification, p.secondaryDep, p.spec.LabelNames); err != nil {
			return Progress{}, err
		}
	}
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) == 0 {
		if err := b.scale(ctx, p.secondaryDep, 1); err != nil {
			return Progress{}, err
		}
	}
	return done(StepSecondaryUpdated), nil
}

// awaitSecondary waits until every pod of the secondary runs the target
// and is Ready.
func (b *BlueGreen) awaitSecondary(ctx context.Context, cv *cvv1.ContainerVersion, p pair, target Target) (Progress, error) {
	h, err := b.Listers.Health(ctx, p.secondary, cv.Spec.Container.Name, target.Image)
	if err != nil {
		return Progress{}, err
	}
	switch {
	case h.Failed:
		return Progress{Phase: Failed, Reason: h.Reason,
			Message: fmt.Sprintf("%s (live Service %s untouched)", h.Message, p.live.Name)}, nil
	case !h.Done:
		return Progress{Phase: InProgress, Step: StepSecondaryUpdated, Reason: "WaitingForSecondary",
			Message: fmt.Sprintf("waiting for %s: %d/%d ready", p.secondary.Key(), h.Ready, h.Desired)}, nil
	}
	return done(StepSecondaryReady), nil
}

// verify runs strategy.verify against the secondary while it carries no
// live traffic; the verification Service name is passed to the verifier.
func (b *BlueGreen) verify(ctx context.Context, cv *cvv1.ContainerVersion, p pair, target Target) (Progress, error) {
	var env []corev1.EnvVar
	if p.verification != nil {
		env = append(env, corev1.EnvVar{Name: "CVMANAGER_VERIFICATION_SERVICE", Value: p.verification.Name})
	}
	steps := b.Jobs.VerifySteps(cv, target, PhaseVerifyAfter, cv.Spec.Strategy.Verify, env...)
	progress, err := b.Jobs.RunAll(ctx, cv, target, steps)
	if progress.Phase == InProgress {
		progress.Step = StepSecondaryReady
	}
	if progress.Phase == Failed {
		progress.Message += fmt.Sprintf(" (live Service %s untouched)", p.live.Name)
	}
	return progress, err
}

// scaleUp gives the secondary as many replicas as the primary and waits
// for them, so the switch does not move full traffic onto one pod.
func (b *BlueGreen) scaleUp(ctx context.Context, cv *cvv1.ContainerVersion, p pair, target Target) (Progress, error) {
	want := ptr.Deref(p.primaryDep.Spec.Replicas, 1)
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) < want {
		if err := b.scale(ctx, p.secondaryDep, want); err != nil {
			return Progress{}, err
		}
		return Progress{Phase: InProgress, Step: StepVerified, Reason: "ScalingSecondary",
			Message: fmt.Sprintf("scaling %s to %d replicas", p.secondary.Key(), want)}, nil
	}
	progress, err := b.awaitSecondary(ctx, cv, p, target)
	if progress.Phase == InProgress {
		progress.Step = StepVerified
	}
	if progress.Phase == Succeeded {
		progress.Step = StepScaledUp
	}
	return progress, err
}

func (b *BlueGreen) switchService(ctx context.Context, _ *cvv1.ContainerVersion, p pair, _ Target) (Progress, error) {
	if err := b.pointAt(ctx, p.live, p.secondaryDep, p.spec.LabelNames); err != nil {
		return Progress{}, err
	}
	return done(StepSwitched), nil
}

// finish runs once the live Service selects the Deployment with the
// target: scale the old one down when asked.
func (b *BlueGreen) finish(ctx context.Context, p pair) (Progress, error) {
	msg := fmt.Sprintf("Service %s selects %s", p.live.Name, p.primary.Key())
	if p.spec.ScaleDown && ptr.Deref(p.secondaryDep.Spec.Replicas, 1) > 0 {
		if err := b.scale(ctx, p.secondaryDep, 0); err != nil {
			return Progress{}, err
		}
		msg += fmt.Sprintf("; %s scaled to 0", p.secondary.Key())
	}
	return Progress{Phase: Succeeded, Reason: "RolloutComplete", Message: msg, Workloads: p.keys()}, nil
}

// Revert switches the live Service back to the Deployment that runs the
// previous version when it had been switched, then puts the previous image
// into the other Deployment too. The Service is only switched back onto
// Ready pods: when the old Deployment was scaled down, it is scaled up and
// Revert returns an error so the controller retries once it is Ready.
func (b *BlueGreen) Revert(ctx context.Context, cv *cvv1.ContainerVersion, previous Target) error {
	p, bad, err := b.load(ctx, cv)
	if err != nil {
		return err
	}
	if bad.Phase == Failed {
		return fmt.Errorf("cannot roll back: %s", bad.Message)
	}
	container := cv.Spec.Container.Name
	if image, _ := workload.ContainerImage(p.primary, container); image != previous.Image {
		if err := b.switchBack(ctx, p, container, previous); err != nil {
			return err
		}
		p.primary, p.secondary, p.primaryDep, p.secondaryDep = p.secondary, p.primary, p.secondaryDep, p.primaryDep
	}
	if _, err := workload.PatchImage(ctx, b.Client, p.secondary, container, previous.Image); err != nil {
		return fmt.Errorf("restoring %s: %w", p.secondary.Key(), err)
	}
	if p.spec.ScaleDown {
		return b.scale(ctx, p.secondaryDep, 0)
	}
	return nil
}

func (b *BlueGreen) switchBack(ctx context.Context, p pair, container string, previous Target) error {
	if image, _ := workload.ContainerImage(p.secondary, container); image != previous.Image {
		return fmt.Errorf("neither %s nor %s runs %s: switch %s by hand", p.primary.Key(), p.secondary.Key(), previous.Image, p.live.Name)
	}
	want := ptr.Deref(p.primaryDep.Spec.Replicas, 1)
	if ptr.Deref(p.secondaryDep.Spec.Replicas, 1) < want {
		if err := b.scale(ctx, p.secondaryDep, want); err != nil {
			return err
		}
	}
	if p.secondaryDep.Status.ReadyReplicas < max(want, 1) {
		return fmt.Errorf("waiting for %s to be Ready before switching %s back", p.secondary.Key(), p.live.Name)
	}
	return b.pointAt(ctx, p.live, p.secondaryDep, p.spec.LabelNames)
}

// pointAt sets the Service selector's blue-green labels to the values in
// the Deployment's pod template; other selector keys are left alone.
func (b *BlueGreen) pointAt(ctx context.Context, svc *corev1.Service, d *appsv1.Deployment, labelNames []string) error {
	selector, changed := selectorFor(svc, d, labelNames)
	if !changed {
		return nil
	}
	if err := patchSelector(ctx, b.Client, svc, selector); err != nil {
		return fmt.Errorf("pointing Service %s at Deployment/%s: %w", svc.Name, d.Name, err)
	}
	return nil
}

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

func (b *BlueGreen) scale(ctx context.Context, d *appsv1.Deployment, replicas int32) error {
	return scaleDeployment(ctx, b.Client, d, replicas)
}

// load reads the Services and Deployments and checks the configuration.
// A misconfiguration is returned as a Failed Progress (nothing changed).
func (b *BlueGreen) load(ctx context.Context, cv *cvv1.ContainerVersion) (pair, Progress, error) {
	spec := cv.Spec.Strategy.BlueGreen
	if spec == nil {
		return pair{}, misconfigured("BlueGreenSpecMissing", "strategy ServiceBlueGreen needs strategy.blueGreen"), nil
	}
	p := pair{spec: spec}
	var err error
	var bad Progress
	if p.live, bad, err = b.service(ctx, cv.Namespace, spec.ServiceName, "ServiceNotFound"); err != nil || bad.Phase == Failed {
		return p, bad, err
	}
	if spec.VerificationServiceName != "" {
		if p.verification, bad, err = b.service(ctx, cv.Namespace, spec.VerificationServiceName, "VerificationServiceNotFound"); err != nil || bad.Phase == Failed {
			return p, bad, err
		}
	}
	deployments, bad := b.twoDeployments(cv)
	if bad.Phase == Failed {
		return p, bad, nil
	}
	return p.assign(deployments, cv.Spec.Container.Name)
}

func (b *BlueGreen) service(ctx context.Context, namespace, name, reason string) (*corev1.Service, Progress, error) {
	svc, err := b.Client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, serviceNotFound(reason, name, namespace), nil
	}
	return svc, Progress{}, err
}

// twoDeployments insists on exactly two Deployments and nothing else: with
// three, which pair to switch between would be a guess.
func (b *BlueGreen) twoDeployments(cv *cvv1.ContainerVersion) ([]*appsv1.Deployment, Progress) {
	workloads, err := b.Listers.Select(cv.Namespace, selectorOf(cv))
	if err != nil {
		return nil, misconfigured("InvalidSelector", "spec.selector: %v", err)
	}
	return twoDeploymentsOf(cv, workloads)
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
