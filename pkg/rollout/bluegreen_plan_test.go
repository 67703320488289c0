package rollout

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

// blueGreenCV is CV web with strategy ServiceBlueGreen over Services web
// and web-verify, label color, scaleDown and one verification, at step.
func blueGreenCV(step string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	return rollingCV(step, append([]func(*cvv1.ContainerVersionSpec){gen.BlueGreen("web", "registry.example.com/smoke@"+digestA)}, edit...)...)
}

// services are web (live) and web-verify selecting the given colours.
func services(live, verify string) []*corev1.Service {
	s := gen.BlueGreenServices(testNS, "web")
	s[0].Spec.Selector["color"], s[1].Spec.Selector["color"] = live, verify
	return s
}

func withReplicas(d *appsv1.Deployment, spec int32) *appsv1.Deployment {
	d.Spec.Replicas = &spec
	return d
}

func TestBlueGreenPlan(t *testing.T) {
	verifyJob := JobName("web", PhaseVerifyAfter, "1", digestB)
	blueGreen := []string{"Deployment/web-blue", "Deployment/web-green"}
	greenBlue := []string{"Deployment/web-green", "Deployment/web-blue"}
	passed := func(cv *cvv1.ContainerVersion) *batchv1.Job {
		return stepJob(cv, PhaseVerifyAfter, "1", rolloutStart, batchv1.JobComplete, "")
	}
	noScaleDown := func(s *cvv1.ContainerVersionSpec) { s.Strategy.BlueGreen.ScaleDown = false }
	noVerifyService := func(s *cvv1.ContainerVersionSpec) { s.Strategy.BlueGreen.VerificationServiceName = "" }
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "the idle secondary gets the target, the verification Service and a replica",
		world: worldOf(blueGreenCV(StepMigrated), colour("blue", oldImage, 3), colour("green", oldImage, 0), services("blue", "blue")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "UpdatingSecondary", Step: StepSecondaryUpdated, Workloads: blueGreen,
				Message: "updating Deployment/web-green to " + newImage},
			Actions: []string{"patch Deployment/web-green container app image " + newImage,
				"point Service web-verify at color=green", "scale Deployment/web-green to 1"},
		},
	}, {
		name: "without a verification Service only the secondary changes",
		world: worldOf(blueGreenCV(StepMigrated, noVerifyService), colour("blue", oldImage, 3), colour("green", oldImage, 2),
			services("blue", "blue")[0]),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "UpdatingSecondary", Step: StepSecondaryUpdated, Workloads: blueGreen,
				Message: "updating Deployment/web-green to " + newImage},
			Actions: []string{"patch Deployment/web-green container app image " + newImage},
		},
	}, {
		name: "waiting for the secondary",
		world: worldOf(blueGreenCV(StepSecondaryUpdated), colour("blue", oldImage, 3), available(colour("green", newImage, 1), 0),
			services("blue", "green")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForSecondary", Step: StepSecondaryUpdated, Workloads: blueGreen,
			Message: "waiting for Deployment/web-green: 0/1 ready"}},
	}, {
		name: "a secondary that cannot start fails with the live Service untouched",
		world: worldOf(blueGreenCV(StepSecondaryUpdated), colour("blue", oldImage, 3), available(colour("green", newImage, 1), 0),
			services("blue", "green"), podsOf{"Deployment/web-green", []*corev1.Pod{stuckPod("web-green-1", newImage, "ImagePullBackOff")}}),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "ImagePullBackOff", Workloads: blueGreen,
			Message: "Deployment/web-green: pod web-green-1 container app is ImagePullBackOff (live Service web untouched)"}},
	}, {
		name:  "secondary Ready: its verification Job is created",
		world: worldOf(blueGreenCV(StepSecondaryUpdated), colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepSecondaryReady, Workloads: blueGreen,
				Message: "postverify job " + verifyJob + " started"},
			Actions: []string{"create Job " + verifyJob},
		},
	}, {
		name: "a failed verification leaves the live Service untouched",
		world: worldOf(blueGreenCV(StepSecondaryReady), colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green"),
			stepJob(blueGreenCV(""), PhaseVerifyAfter, "1", rolloutStart, batchv1.JobFailed, "BackoffLimitExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed", Workloads: blueGreen,
			Message: "postverify job " + verifyJob + " failed: BackoffLimitExceeded from the Job controller (live Service web untouched)"}},
	}, {
		name: "verification running against the secondary: the live Service untouched",
		world: worldOf(blueGreenCV(StepSecondaryReady), colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green"),
			stepJob(blueGreenCV(""), PhaseVerifyAfter, "1", rolloutStart, "", "")),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "JobRunning", Step: StepSecondaryReady, Workloads: blueGreen,
			Message: "waiting for postverify job " + verifyJob}},
	}, {
		name: "a verification timeout before the switch (activeDeadlineSeconds) leaves the live Service untouched",
		world: worldOf(blueGreenCV(StepSecondaryReady), colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green"),
			stepJob(blueGreenCV(""), PhaseVerifyAfter, "1", rolloutStart, batchv1.JobFailed, "DeadlineExceeded")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "VerificationFailed", Workloads: blueGreen,
			Message: "postverify job " + verifyJob + " failed: DeadlineExceeded from the Job controller (live Service web untouched)"}},
	}, {
		name: "verified: the secondary is scaled to the primary's replicas",
		world: worldOf(blueGreenCV(StepSecondaryReady), colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green"),
			passed(blueGreenCV(""))),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "ScalingSecondary", Step: StepVerified, Workloads: blueGreen,
				Message: "scaling Deployment/web-green to 3 replicas"},
			Actions: []string{"scale Deployment/web-green to 3"},
		},
	}, {
		name: "scaling up makes the secondary un-Ready again; the step does not go back",
		world: worldOf(blueGreenCV(StepVerified), colour("blue", oldImage, 3), available(colour("green", newImage, 3), 1), services("blue", "green"),
			passed(blueGreenCV(""))),
		want: outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForSecondary", Step: StepVerified, Workloads: blueGreen,
			Message: "waiting for Deployment/web-green: 1/3 ready"}},
	}, {
		name: "scaled up and Ready: the live Service is switched",
		world: worldOf(blueGreenCV(StepVerified), colour("blue", oldImage, 3), colour("green", newImage, 3), services("blue", "green"),
			passed(blueGreenCV(""))),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: StepSwitched, Step: StepSwitched, Workloads: blueGreen,
				Message: "Service web switched to Deployment/web-green"},
			Actions: []string{"point Service web at color=green"},
		},
	}, {
		name: "switched: the old side is scaled down, keeping its image",
		world: worldOf(blueGreenCV(StepSwitched), colour("blue", oldImage, 3), colour("green", newImage, 3), services("green", "green"),
			passed(blueGreenCV(""))),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "ScalingDown", Step: StepSwitched, Workloads: greenBlue,
				Message: "Service web selects Deployment/web-green; scaling Deployment/web-blue to 0"},
			Actions: []string{"scale Deployment/web-blue to 0"},
		},
	}, {
		name: "old side at 0 replicas on the previous version: done",
		world: worldOf(blueGreenCV(StepSwitched), colour("blue", oldImage, 0), colour("green", newImage, 3), services("green", "green"),
			passed(blueGreenCV(""))),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: greenBlue,
			Message: "Service web selects Deployment/web-green; Deployment/web-blue scaled to 0"}},
	}, {
		name: "without scaleDown the switch is the end",
		world: worldOf(blueGreenCV(StepSwitched, noScaleDown), colour("blue", oldImage, 3), colour("green", newImage, 3),
			services("green", "green")),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolloutComplete", Workloads: greenBlue,
			Message: "Service web selects Deployment/web-green"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&BlueGreen{Jobs: &Jobs{}}).Plan(c.world)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

// Every misconfiguration fails the rollout as misconfigured and plans no
// action at all, in Plan and PlanRevert alike.
func TestBlueGreenPlanMisconfigured(t *testing.T) {
	cv := blueGreenCV(StepMigrated)
	blue, green := colour("blue", oldImage, 3), colour("green", oldImage, 0)
	unlabelled := colour("green", oldImage, 0)
	delete(unlabelled.Spec.Template.Labels, "color")
	twin := colour("green", oldImage, 0)
	twin.Spec.Template.Labels["color"] = "blue"
	otherContainer := colour("green", oldImage, 0)
	otherContainer.Spec.Template.Spec.Containers[0].Name = "web"
	noColour := services("blue", "blue")
	delete(noColour[0].Spec.Selector, "color")
	noSpec := rollingCV(StepMigrated, func(s *cvv1.ContainerVersionSpec) { s.Strategy.Kind = cvv1.StrategyServiceBlueGreen })
	cases := map[string]World{
		"BlueGreenSpecMissing":        worldOf(noSpec, blue, green, services("blue", "blue")),
		"ServiceNotFound":             worldOf(cv, blue, green, services("blue", "blue")[1]),
		"VerificationServiceNotFound": worldOf(cv, blue, green, services("blue", "blue")[0]),
		"NotTwoDeployments":           worldOf(cv, blue, services("blue", "blue")),
		"LabelMissing":                worldOf(cv, blue, unlabelled, services("blue", "blue")),
		"ServiceSelectorMissingLabel": worldOf(cv, blue, green, noColour),
		"LabelsNotDistinct":           worldOf(cv, blue, twin, services("blue", "blue")),
		"ServiceSelectsNeither":       worldOf(cv, blue, green, services("red", "blue")),
		"ContainerNotFound":           worldOf(cv, blue, otherContainer, services("blue", "blue")),
	}
	cases["NotTwoDeployments with a StatefulSet"] = worldOf(cv, blue, green, gen.NewStatefulSet(testNS, "db", "web", oldImage), services("blue", "blue"))
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			reason := name
			if reason == "NotTwoDeployments with a StatefulSet" {
				reason = "NotTwoDeployments"
			}
			b := &BlueGreen{Jobs: &Jobs{}}
			for verb, plan := range map[string]Plan{"Plan": b.Plan(w), "PlanRevert": b.PlanRevert(w)} {
				got := outcome{Progress: Progress{Phase: plan.Progress.Phase, Reason: plan.Progress.Reason,
					Misconfigured: plan.Progress.Misconfigured}, Actions: outcomeOf(plan).Actions}
				want := outcome{Progress: Progress{Phase: Failed, Reason: reason, Misconfigured: true}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s\nmessage: %s", verb, diff, plan.Progress.Message)
				}
			}
		})
	}
}

// Rollback (docs/strategies.md): before the switch the secondary gets the
// previous digest back (and 0 replicas with scaleDown); after it the live
// Service is switched back onto the side running the previous digest, only
// once that side is Ready (scaled up first when it had been scaled down),
// then the other side gets the previous digest too. WaitingForPrevious
// while the old side becomes Ready, NeitherRunsPrevious when no side runs
// it.
func TestBlueGreenPlanRevert(t *testing.T) {
	cv := blueGreenCV(StepSecondaryReady)
	keepReplicas := blueGreenCV(StepSecondaryReady, func(s *cvv1.ContainerVersionSpec) { s.Strategy.BlueGreen.ScaleDown = false })
	blueGreen := []string{"Deployment/web-blue", "Deployment/web-green"}
	greenBlue := []string{"Deployment/web-green", "Deployment/web-blue"}
	waiting := "waiting for Deployment/web-blue to be Ready before switching web back"
	cases := []struct {
		name  string
		world World
		want  outcome
	}{{
		name:  "before the switch: the secondary gets the previous image and 0 replicas",
		world: worldOf(cv, colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "RollingBack", Workloads: blueGreen,
				Message: "Service web selects Deployment/web-blue, which runs " + oldImage},
			Actions: []string{"patch Deployment/web-green container app image " + oldImage, "scale Deployment/web-green to 0"},
		},
	}, {
		name:  "before the switch, all restored: rolled back",
		world: worldOf(cv, colour("blue", oldImage, 3), colour("green", oldImage, 0), services("blue", "green")),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolledBack", Workloads: blueGreen,
			Message: "Service web selects Deployment/web-blue, which runs " + oldImage}},
	}, {
		name:  "after the switch: the scaled-down old side is scaled up first, the Service not yet touched",
		world: worldOf(cv, colour("blue", oldImage, 0), colour("green", newImage, 3), services("green", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "WaitingForPrevious", Workloads: greenBlue, Message: waiting},
			Actions:  []string{"scale Deployment/web-blue to 3"},
		},
	}, {
		name:  "after the switch: the Service waits for the old side to be Ready",
		world: worldOf(cv, available(colour("blue", oldImage, 3), 1), colour("green", newImage, 3), services("green", "green")),
		want:  outcome{Progress: Progress{Phase: InProgress, Reason: "WaitingForPrevious", Workloads: greenBlue, Message: waiting}},
	}, {
		name:  "after the switch, old side Ready: switch back, restore and scale down the other",
		world: worldOf(cv, colour("blue", oldImage, 3), colour("green", newImage, 3), services("green", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "RollingBack", Workloads: blueGreen,
				Message: "Service web selects Deployment/web-blue, which runs " + oldImage},
			Actions: []string{"point Service web at color=blue", "patch Deployment/web-green container app image " + oldImage,
				"scale Deployment/web-green to 0"},
		},
	}, {
		name:  "before the switch without scaleDown: the secondary gets the previous image and keeps its replicas",
		world: worldOf(keepReplicas, colour("blue", oldImage, 3), colour("green", newImage, 1), services("blue", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "RollingBack", Workloads: blueGreen,
				Message: "Service web selects Deployment/web-blue, which runs " + oldImage},
			Actions: []string{"patch Deployment/web-green container app image " + oldImage},
		},
	}, {
		name:  "after the switch without scaleDown, old side Ready: switch back and restore, nothing scaled down",
		world: worldOf(keepReplicas, colour("blue", oldImage, 3), colour("green", newImage, 3), services("green", "green")),
		want: outcome{
			Progress: Progress{Phase: InProgress, Reason: "RollingBack", Workloads: blueGreen,
				Message: "Service web selects Deployment/web-blue, which runs " + oldImage},
			Actions: []string{"point Service web at color=blue", "patch Deployment/web-green container app image " + oldImage},
		},
	}, {
		name:  "without scaleDown, both sides on the previous image with their replicas: rolled back",
		world: worldOf(keepReplicas, colour("blue", oldImage, 3), colour("green", oldImage, 3), services("blue", "green")),
		want: outcome{Progress: Progress{Phase: Succeeded, Reason: "RolledBack", Workloads: blueGreen,
			Message: "Service web selects Deployment/web-blue, which runs " + oldImage}},
	}, {
		name:  "neither side runs the previous version",
		world: worldOf(cv, colour("blue", newImage, 3), colour("green", newImage, 3), services("green", "green")),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "NeitherRunsPrevious", Workloads: greenBlue,
			Message: "neither Deployment/web-green nor Deployment/web-blue runs " + oldImage + ": switch web by hand"}},
	}, {
		name:  "a misconfiguration is no rollback",
		world: worldOf(cv, colour("blue", oldImage, 3), colour("green", newImage, 3)),
		want: outcome{Progress: Progress{Phase: Failed, Reason: "ServiceNotFound", Misconfigured: true,
			Message: "cannot roll back: Service web not found in namespace shop; nothing was changed"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := diffPlan(c.want, (&BlueGreen{Jobs: &Jobs{}}).PlanRevert(c.world)); diff != "" {
				t.Errorf("PlanRevert (-want +got):\n%s", diff)
			}
		})
	}
}
