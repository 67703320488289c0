package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

func withVerify(s *cvv1.ContainerVersionSpec) {
	s.Strategy.Verify = []cvv1.VerifySpec{{Kind: "Image", Image: "registry.example.com/smoke@" + digestA}}
}

func TestSimplePlan(t *testing.T) {
	cv := rollingCV(StepMigrated)
	verified := rollingCV(StepMigrated, withVerify)
	atReady := rollingCV(StepWorkloadsReady, withVerify)
	postverify := JobName("web", PhaseVerifyAfter, "1", digestB)
	both := []string{"Deployment/api", "Deployment/web"}
	one := []string{"Deployment/web"}
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "every workload on the old image is patched",
		world: worldOf(cv, deployment("web", oldImage, 3), deployment("api", oldImage, 1)),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads", Workloads: both,
				Message: "waiting for Deployment/api to be updated, Deployment/web to be updated"},
			Actions: []string{"patch Deployment/api container app image " + newImage, "patch Deployment/web container app image " + newImage},
		},
	}, {
		name:  "a patched workload is judged, the other patched",
		world: worldOf(cv, available(deployment("web", newImage, 3), 1), deployment("api", oldImage, 1)),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads", Workloads: both,
				Message: "waiting for Deployment/api to be updated, Deployment/web 1/3 ready"},
			Actions: []string{"patch Deployment/api container app image " + newImage},
		},
	}, {
		name:  "a workload not yet observed by its controller is waited for",
		world: worldOf(cv, notObserved(deployment("web", newImage, 3))),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads", Workloads: one,
			Message: "waiting for Deployment/web 3/3 ready"}},
	}, {
		name: "ImagePullBackOff fails the rollout and patches nothing more",
		world: worldOf(cv, available(deployment("web", newImage, 3), 0), deployment("api", oldImage, 1),
			podsOf{"Deployment/web", []*corev1.Pod{stuckPod("web-1", newImage, "ImagePullBackOff")}}),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "ImagePullBackOff", Workloads: both,
			Message: "Deployment/web: pod web-1 container app is ImagePullBackOff"}},
	}, {
		name: "CrashLoopBackOff fails the rollout",
		world: worldOf(cv, available(deployment("web", newImage, 3), 2),
			podsOf{"Deployment/web", []*corev1.Pod{stuckPod("web-1", newImage, "CrashLoopBackOff")}}),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "CrashLoopBackOff", Workloads: one,
			Message: "Deployment/web: pod web-1 container app is CrashLoopBackOff"}},
	}, {
		name: "a stuck pod of the old image is not the new version's fault",
		world: worldOf(cv, available(deployment("web", newImage, 3), 2),
			podsOf{"Deployment/web", []*corev1.Pod{stuckPod("web-0", oldImage, "CrashLoopBackOff")}}),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads", Workloads: one,
			Message: "waiting for Deployment/web 2/3 ready"}},
	}, {
		name:  "ProgressDeadlineExceeded fails the rollout",
		world: worldOf(cv, deadlineExceeded(available(deployment("web", newImage, 3), 1))),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "ProgressDeadlineExceeded", Workloads: one,
			Message: `Deployment/web: ReplicaSet "web-7c9" has timed out progressing.`}},
	}, {
		name:  "every workload ready: done",
		world: worldOf(cv, deployment("web", newImage, 3), deployment("api", newImage, 1)),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: both,
			Message: "2 workload(s) run " + newImage}},
	}, {
		name:  "a CronJob is done once its template holds the target",
		world: worldOf(cv, gen.NewCronJob(testNS, "report", "web", newImage)),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: []string{"CronJob/report"},
			Message: "1 workload(s) run " + newImage}},
	}, {
		name:  "verification waits for the workloads",
		world: worldOf(verified, available(deployment("web", newImage, 3), 2)),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForWorkloads", Workloads: one,
			Message: "waiting for Deployment/web 2/3 ready"}},
	}, {
		name:  "workloads ready: the verification Job is created",
		world: worldOf(verified, deployment("web", newImage, 3)),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepWorkloadsReady, Workloads: one,
				Message: "postverify job " + postverify + " started"},
			Actions: []string{"create Job " + postverify},
		},
	}, {
		name:  "verification running",
		world: worldOf(atReady, deployment("web", newImage, 3), stepJob(atReady, PhaseVerifyAfter, "1", rolloutStart, "", "")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepWorkloadsReady, Workloads: one,
			Message: "waiting for postverify job " + postverify}},
	}, {
		name: "verification failed: the log tail is quoted",
		world: worldOf(atReady, deployment("web", newImage, 3), stepJob(atReady, PhaseVerifyAfter, "1", rolloutStart, batchv1.JobFailed, "BackoffLimitExceeded"),
			jobLog{postverify, "GET /healthz: 500"}),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed", Workloads: one,
			Message: "postverify job " + postverify + " failed: BackoffLimitExceeded from the Job controller; log tail:\nGET /healthz: 500"}},
	}, {
		name:  "verification timed out (activeDeadlineSeconds)",
		world: worldOf(atReady, deployment("web", newImage, 3), stepJob(atReady, PhaseVerifyAfter, "1", rolloutStart, batchv1.JobFailed, "DeadlineExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed", Workloads: one,
			Message: "postverify job " + postverify + " failed: DeadlineExceeded from the Job controller"}},
	}, {
		name:  "verification passed",
		world: worldOf(atReady, deployment("web", newImage, 3), stepJob(atReady, PhaseVerifyAfter, "1", rolloutStart, batchv1.JobComplete, "")),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: one,
			Message: "1 workload(s) run " + newImage + "; verified"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&Simple{Jobs: &Jobs{}}).Plan(c.world)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

func notObserved(d *appsv1.Deployment) *appsv1.Deployment {
	d.Generation = 2
	d.Status.ObservedGeneration = 1
	return d
}

func TestSimplePlanMisconfigured(t *testing.T) {
	cv := rollingCV(StepMigrated)
	badSelector := rollingCV(StepMigrated, func(s *cvv1.ContainerVersionSpec) {
		s.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
	})
	sidecarOnly := deployment("api", oldImage, 1)
	sidecarOnly.Spec.Template.Spec.Containers[0].Name = "sidecar"
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "invalid selector",
		world: worldOf(badSelector),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "InvalidSelector", Misconfigured: true,
			Message: `spec.selector: "Near" is not a valid label selector operator`}},
	}, {
		name:  "no workloads",
		world: worldOf(cv),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "NoMatchingWorkloads", Misconfigured: true,
			Message: "no Deployment, StatefulSet, DaemonSet or CronJob in namespace shop matches selector app=web"}},
	}, {
		name:  "a workload lacks the container: nothing is patched",
		world: worldOf(cv, deployment("web", oldImage, 1), sidecarOnly),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "ContainerNotFound", Misconfigured: true,
			Message: `container "app" not found in Deployment/api; nothing was changed`}},
	}, {
		name:  "a workload runs another repository",
		world: worldOf(cv, deployment("web", "ghcr.io/other/app:v1", 1)),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "RepoMismatch", Misconfigured: true,
			Message: `container "app" in Deployment/web runs ghcr.io/other/app:v1, not an image of spec.imageRepo ` + testRepo + "; nothing was changed"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&Simple{Jobs: &Jobs{}}).Plan(c.world)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSimplePlanRevert(t *testing.T) {
	cv := rollingCV(StepMigrated)
	sidecarOnly := deployment("extra", oldImage, 1)
	sidecarOnly.Spec.Template.Spec.Containers[0].Name = "sidecar"
	noPrev := worldOf(cv, deployment("web", newImage, 1))
	noPrev.Previous = nil
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "workloads on the failed version are patched back, health is not awaited",
		world: worldOf(cv, available(deployment("web", newImage, 3), 0), deployment("api", oldImage, 1), sidecarOnly),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "RollingBack", Workloads: []string{"Deployment/api", "Deployment/web"},
				Message: "restoring " + oldImage + " in 1 workload(s)"},
			Actions: []string{"patch Deployment/web container app image " + oldImage},
		},
	}, {
		name:  "nothing left to patch: rolled back",
		world: worldOf(cv, available(deployment("web", oldImage, 3), 0), deployment("api", oldImage, 1)),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolledBack", Workloads: []string{"Deployment/api", "Deployment/web"},
			Message: "2 workload(s) run " + oldImage}},
	}, {
		name:  "no previous version",
		world: noPrev,
		want:  outcome{Progress: Progress{Phase: Failed, Reason: "NoPreviousVersion", Message: "no previous version to roll back to"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&Simple{Jobs: &Jobs{}}).PlanRevert(c.world)); diff != "" {
				t.Errorf("PlanRevert (-want +got):\n%s", diff)
			}
		})
	}
}
