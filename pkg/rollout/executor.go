package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Describe implements Action.
func (a PatchImage) Describe() string {
	return fmt.Sprintf("patch %s container %s image %s", a.Workload.Key(), a.Container, a.Image)
}

// Describe implements Action.
func (a ScaleDeployment) Describe() string {
	return fmt.Sprintf("scale Deployment/%s to %d", a.Deployment.Name, a.Replicas)
}

// Describe implements Action. Selector keys are sorted so the text is
// stable (tests compare it).
func (a PointService) Describe() string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(a.Selector)) {
		pairs = append(pairs, k+"="+a.Selector[k])
	}
	return fmt.Sprintf("point Service %s at %s", a.Service.Name, strings.Join(pairs, ","))
}

// Describe implements Action.
func (a CreateJob) Describe() string { return "create Job " + a.Name }

// Describe implements Action.
func (a DeleteJob) Describe() string { return "delete Job " + a.Job.Name }

// Executor is the apply phase of a rollout: it makes the writes a Plan
// lists. It decides nothing the plan could have decided; it only reports
// what the API server's answers decide (a Job refused or rejected).
type Executor struct {
	Client kubernetes.Interface
	// Jobs builds and admits the Jobs of CreateJob actions.
	Jobs *Jobs
}

// Apply runs actions in order and stops at the first one that does not go
// through. A non-nil Progress means an action's outcome decides the
// rollout (a Job that cannot be built or is refused: Failed, possibly
// misconfigured) and replaces the plan's; an error is worth a retry (the
// plan is made again from a fresh World, so actions already done are not
// repeated). Actions are idempotent: "already there" counts as done.
func (e *Executor) Apply(ctx context.Context, cv *cvv1.ContainerVersion, actions []Action) (*Progress, error) {
	for _, a := range actions {
		if p, err := e.apply(ctx, cv, a); err != nil || p != nil {
			return p, err
		}
	}
	return nil, nil
}

func (e *Executor) apply(ctx context.Context, cv *cvv1.ContainerVersion, action Action) (*Progress, error) {
	switch a := action.(type) {
	case PatchImage:
		if _, err := workload.PatchImage(ctx, e.Client, a.Workload, a.Container, a.Image); err != nil {
			return nil, fmt.Errorf("updating %s: %w", a.Workload.Key(), err)
		}
		return nil, nil
	case ScaleDeployment:
		return nil, scaleDeployment(ctx, e.Client, a.Deployment, a.Replicas)
	case PointService:
		if err := patchSelector(ctx, e.Client, a.Service, a.Selector); err != nil {
			return nil, fmt.Errorf("pointing Service %s at %v: %w", a.Service.Name, a.Selector, err)
		}
		return nil, nil
	case CreateJob:
		if e.Jobs == nil {
			return nil, fmt.Errorf("creating Job %s: the executor has no Jobs", a.Name)
		}
		return e.Jobs.createJob(ctx, e.Client, cv, a.Target, a.Step, a.Name)
	case DeleteJob:
		return nil, deleteJob(ctx, e.Client, a.Job)
	}
	return nil, fmt.Errorf("unknown rollout action %T", action)
}

// scaleDeployment sets spec.replicas with a merge patch, so nothing else
// of the Deployment is read or overwritten.
func scaleDeployment(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment, replicas int32) error {
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
	_, err := client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "cvmanager"})
	if err != nil {
		return fmt.Errorf("scaling Deployment/%s to %d: %w", d.Name, replicas, err)
	}
	return nil
}

// patchSelector sets the given keys of a Service's selector with a merge
// patch: selector keys cvmanager does not manage stay as the user set them.
func patchSelector(ctx context.Context, client kubernetes.Interface, svc *corev1.Service, selector map[string]string) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"selector": selector}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "cvmanager"})
	return err
}
