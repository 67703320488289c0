package rollout

import (
	"slices"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/test/gen"
)

// Builders for plan tests: a CV rolling web from v1 (digestA) to v2
// (digestB) in namespace shop, and the objects of its World.
const (
	testNS   = "shop"
	testRepo = "127.0.0.1:5000/team/app"
)

var (
	rolloutStart = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	oldImage     = gen.Pinned(testRepo, "v1", digestA)
	newImage     = gen.Pinned(testRepo, "v2", digestB)
	target       = Target{Version: "v2", Digest: digestB, Image: newImage}
	previous     = Target{Version: "v1", Digest: digestA, Image: oldImage}
)

// rollingCV is CV web (selecting app=web, container app) rolling out
// target, recorded at step.
func rollingCV(step string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	cv := gen.NewCV(testNS, "web", testRepo, edit...)
	cv.UID = types.UID("cv-uid")
	cv.Status.SuccessVersion, cv.Status.SuccessDigest = previous.Version, previous.Digest
	cv.Status.Rollout = &cvv1.RolloutStatus{Version: target.Version, Digest: target.Digest, Step: step,
		StartTime: metav1.NewTime(rolloutStart)}
	return cv
}

// podsOf puts pods into a World under a workload's key.
type podsOf struct {
	key  string
	pods []*corev1.Pod
}

// worldOf is the World of cv made of objs: workloads (sorted as
// Listers.Select sorts them), Services, Jobs, podsOf and jobLog values.
func worldOf(cv *cvv1.ContainerVersion, objs ...any) World {
	w := World{CV: cv, Target: target, Previous: ptr.To(previous), Now: rolloutStart.Add(time.Minute),
		Pods: map[string][]*corev1.Pod{}, Services: map[string]*corev1.Service{},
		Jobs: map[string]*batchv1.Job{}, JobLogs: map[string]string{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			w.Workloads = append(w.Workloads, workload.Workload{Kind: workload.Deployment, Object: o})
		case *appsv1.StatefulSet:
			w.Workloads = append(w.Workloads, workload.Workload{Kind: workload.StatefulSet, Object: o})
		case *batchv1.CronJob:
			w.Workloads = append(w.Workloads, workload.Workload{Kind: workload.CronJob, Object: o})
		case *corev1.Service:
			w.Services[o.Name] = o
		case []*corev1.Service:
			for _, s := range o {
				w.Services[s.Name] = s
			}
		case *batchv1.Job:
			w.Jobs[o.Name] = o
		case podsOf:
			w.Pods[o.key] = o.pods
		case jobLog:
			w.JobLogs[o.job] = o.tail
		default:
			panic("worldOf: unexpected object")
		}
	}
	slices.SortStableFunc(w.Workloads, func(a, b workload.Workload) int { return strings.Compare(a.Key(), b.Key()) })
	return w
}

type jobLog struct{ job, tail string }

// deployment is Deployment name (labelled app=web) running image; its
// status says every replica is updated and available.
func deployment(name, image string, replicas int32) *appsv1.Deployment {
	return ready(gen.NewDeployment(testNS, name, "web", image, replicas))
}

// ready gives d the status of a finished rollout of its spec.
func ready(d *appsv1.Deployment) *appsv1.Deployment {
	n := ptr.Deref(d.Spec.Replicas, 1)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n,
		ReadyReplicas: n, AvailableReplicas: n}
	return d
}

// available sets how many of d's replicas are updated and available.
func available(d *appsv1.Deployment, n int32) *appsv1.Deployment {
	d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = n, n, n
	d.Status.UnavailableReplicas = ptr.Deref(d.Spec.Replicas, 1) - n
	return d
}

// deadlineExceeded marks d's rollout as stuck by its own controller.
func deadlineExceeded(d *appsv1.Deployment) *appsv1.Deployment {
	d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: `ReplicaSet "web-7c9" has timed out progressing.`})
	return d
}

// colour is one side of the blue-green pair web-blue/web-green.
func colour(name, image string, replicas int32) *appsv1.Deployment {
	return ready(gen.ColorDeployment(testNS, "web", name, image, replicas))
}

// stuckPod is a pod of container app running image, waiting for reason.
func stuckPod(name, image, reason string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Spec:       gen.PodSpec(image),
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}}},
	}
}

// stepJob is the Job of a step of cv for target, created at created, with
// the given condition (none: running).
func stepJob(cv *cvv1.ContainerVersion, phase, step string, created time.Time, cond batchv1.JobConditionType, reason string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: JobName(cv.Name, phase, step, target.Digest),
		UID: types.UID("job-uid"), CreationTimestamp: metav1.NewTime(created)}}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Reason: reason, Message: "from the Job controller"}}
	}
	return j
}

// outcome is what a plan test compares: the progress and the actions'
// descriptions (Actions hold live objects and Job builders, which cmp
// cannot compare).
type outcome struct {
	Progress Progress
	Actions  []string
}

func outcomeOf(p Plan) outcome {
	o := outcome{Progress: p.Progress}
	for _, a := range p.Actions {
		o.Actions = append(o.Actions, a.Describe())
	}
	return o
}

func diffPlan(want outcome, got Plan) string { return cmp.Diff(want, outcomeOf(got)) }
