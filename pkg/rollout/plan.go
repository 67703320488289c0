package rollout

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// World is everything a rollout plan reads, gathered once per sync by the
// controller's observe phase from its caches (and, for pods of workloads
// already running the target, one label-selected List). A plan never reads
// anything else, so every transition is a table test over a World.
type World struct {
	// CV is the ContainerVersion; CV.Status.Rollout is the rollout planned.
	CV *cvv1.ContainerVersion
	// Target is the image the rollout moves to.
	Target Target
	// Previous is the version a rollback restores (status.successVersion),
	// nil when there is none.
	Previous *Target
	// Workloads are the workloads spec.selector selects, from the cache.
	Workloads []workload.Workload
	// Pods are the pods of the workloads whose health needs them, by
	// workload key (see workload.Listers.Health for when that is).
	Pods map[string][]*corev1.Pod
	// Services are the blue-green Services by name; a name absent from the
	// map does not exist.
	Services map[string]*corev1.Service
	// Jobs are the CV's own Jobs (label LabelCV) by name.
	Jobs map[string]*batchv1.Job
	// JobLogs are log tails of failed Jobs by Job name, read by observe only
	// for Jobs that failed.
	JobLogs map[string]string
	// Now is the sync's time.
	Now time.Time
}

// Action is one write the apply phase makes to the cluster. Plans return
// actions; the controller's apply phase runs them in order (Executor) and
// only then writes the CV's status, once.
type Action interface {
	// Describe says what the action does, for logs at --v=4 and tests.
	Describe() string
}

// PatchImage sets container's image in a workload's pod template.
type PatchImage struct {
	Workload  workload.Workload
	Container string
	Image     string
}

// ScaleDeployment sets a Deployment's spec.replicas.
type ScaleDeployment struct {
	Deployment *appsv1.Deployment
	Replicas   int32
}

// PointService sets the given keys of a Service's selector; other keys stay.
type PointService struct {
	Service  *corev1.Service
	Selector map[string]string
}

// CreateJob creates the Job of a verification or migration step. Its spec
// is built at apply time (Step.Build may read a template Job or resolve a
// verifier tag), then checked by Jobs.Admit.
type CreateJob struct {
	Name   string
	Step   JobStep
	Target Target
}

// DeleteJob removes a failed Job left over from an earlier attempt at the
// same version, so the step runs again.
type DeleteJob struct {
	Job *batchv1.Job
}

// Plan is the outcome of planning one sync of a rollout: where it stands
// and the writes that move it on.
//
// Progress describes the rollout as it will be once Actions are applied
// (Step is the step reached then), so the controller writes it only after
// Executor.Apply succeeded. Only InProgress plans carry actions: Succeeded
// and Failed are decided from a World in which nothing is left to do, so
// finishing a rollout never waits on a write that might fail.
type Plan struct {
	Progress Progress
	Actions  []Action
}

// Planner is a strategy as a pure function of the World. Plan makes the
// next transition towards w.Target; PlanRevert the next one back to
// w.Previous (Succeeded once the workloads are back, InProgress while a
// step must wait, e.g. blue-green's old colour becoming Ready before the
// Service is switched back).
type Planner interface {
	Name() string
	Plan(w World) Plan
	PlanRevert(w World) Plan
}
