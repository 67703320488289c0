package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/syncer"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/test/gen"
)

// The controller's state machine as table tests of plan: a snapshot in,
// a decision out, no client, no informer. The strategy is a stub planner
// here (the strategies' own transitions are pkg/rollout's table tests).

// stubPlanner answers with fixed plans.
type stubPlanner struct{ forward, revert rollout.Plan }

func (s stubPlanner) Name() string                    { return cvv1.StrategySimple }
func (s stubPlanner) Plan(rollout.World) rollout.Plan { return s.forward }
func (s stubPlanner) PlanRevert(rollout.World) rollout.Plan {
	return s.revert
}

var patchV2 = rollout.PatchImage{Container: "app", Image: "repo:v2@" + digest2}

// patchWeb is the strategy's first write (Deployment web to v2), for cases
// that check whether the strategy ran.
var patchWeb = rollout.PatchImage{Workload: workload.Workload{Kind: workload.Deployment, Object: webDeployment(pinned("v1", digest1), true)},
	Container: "app", Image: pinned("v2", digest2)}

// described lists the actions' descriptions.
func described(actions []rollout.Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, a.Describe())
	}
	return out
}

// conditionOf is the reason and message of d's condition of type kind.
func conditionOf(d decision, kind string) (reason, message string) {
	if c := findCondition(d.cv.Status.Conditions, kind); c != nil {
		return c.Reason, c.Message
	}
	return "", ""
}

func progress(phase rollout.Phase, reason string) rollout.Progress {
	return rollout.Progress{Phase: phase, Reason: reason, Message: reason, Workloads: []string{"Deployment/web"}}
}

// underWay is a snapshot of a rollout under way since started, whose
// strategy answers with p.
func underWay(st cvv1.ContainerVersionStatus, p stubPlanner, edit ...func(*cvv1.ContainerVersionSpec)) *snapshot {
	cv := webCV(st, edit...)
	world := rollout.World{CV: cv, Target: rollout.Target{Version: "v2", Digest: digest2, Image: pinned("v2", digest2)}, Now: t0}
	return &snapshot{cv: cv, now: t0, progressInterval: 2 * time.Second, rollbackOn: cv.Spec.Rollback.Enabled,
		rollout: &rolloutObservation{planner: p, lifecycle: &rollout.Lifecycle{Jobs: &rollout.Jobs{}}, world: world}}
}

// polledSnap is a snapshot of a CV at rest whose poll answered o.
func polledSnap(st cvv1.ContainerVersionStatus, o pollObservation) *snapshot {
	if o.trigger == "" {
		o.trigger = history.TriggerPoll
	}
	if o.verdict == (policy.Verdict{}) {
		o.verdict = policy.Verdict{Allowed: true}
	}
	return &snapshot{cv: webCV(st), now: t0, poll: &o}
}

// outcome summarises a decision for comparison.
type outcome struct {
	Status, Step, Failed, Record, Blocked string
	Rollout, RollingBack, Write           bool
	Actions                               int
	Effects                               []string
}

func summarise(snap *snapshot, d decision) outcome {
	st := d.cv.Status
	o := outcome{Status: st.CurrStatus, Failed: st.FailedDigest, Rollout: st.Rollout != nil,
		Write: d.statusChanged(snap), Actions: len(d.actions)}
	if st.Rollout != nil {
		o.Step, o.RollingBack = st.Rollout.Step, st.Rollout.RollingBack
	}
	if d.record != nil {
		o.Record = d.record.outcome
	}
	if c := findCondition(st.Conditions, cvv1.ConditionReleaseBlocked); c != nil && c.Status == metav1.ConditionTrue {
		o.Blocked = c.Reason
	}
	for _, e := range d.effects {
		switch {
		case e.reason != "":
			o.Effects = append(o.Effects, "event "+e.reason)
		case e.notify != "":
			o.Effects = append(o.Effects, "notify "+e.notify)
		}
	}
	return o
}

func TestPlanRolloutTransitions(t *testing.T) {
	started := t0.Add(-10 * time.Second)
	rollbackOn := func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }
	neither := "neither Deployment/web-green nor Deployment/web-blue runs " + pinned("v1", digest1) + ": switch web by hand"
	for _, tc := range []struct {
		name string
		snap *snapshot
		want outcome
		// check, when set, asserts what outcome does not show.
		check func(*testing.T, decision)
	}{{
		name: "strategy waits with actions: the actions run, status is not written",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{
			Progress: progress(rollout.InProgress, "WaitingForWorkloads"), Actions: []rollout.Action{patchV2}}}),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Actions: 1},
	}, {
		name: "a step reached is recorded once",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: rollout.Progress{
			Phase: rollout.InProgress, Step: rollout.StepWorkloadsReady}}}),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepWorkloadsReady, Write: true},
	}, {
		name: "healthy: the rollout succeeds with one record and its effects",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Succeeded, "RolloutComplete")}}),
		want: outcome{Status: cvv1.StatusSuccess, Record: history.OutcomeSuccess, Write: true,
			Effects: []string{"event " + ReasonRolloutSucceeded, "notify " + notify.Succeeded}},
	}, {
		name: "failed without rollback: the digest is marked failed",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Failed, "ImagePullBackOff")}}),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true,
			Effects: []string{"event " + ReasonRolloutFailed, "notify " + notify.Failed}},
	}, {
		name: "failed with rollback: the intent to roll back is written first, nothing reverted yet",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Failed, "CrashLoopBackOff")}}, rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated, Write: true},
	}, {
		name: "migration failed with onFailure Rollback reverts whatever spec.rollback says",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: func() rollout.Progress {
			p := progress(rollout.Failed, "VerificationFailed")
			p.Revert = true
			return p
		}()}}),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated, Write: true},
	}, {
		name: "rolling back: the revert's actions run",
		snap: underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: progress(rollout.InProgress, "Reverting"),
			Actions: []rollout.Action{patchV2}}}, rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated, Actions: 1},
	}, {
		name: "rolling back past the revert's deadline: writes still to make are made, only the wait is bounded",
		snap: func() *snapshot {
			s := underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: progress(rollout.InProgress, "Reverting"),
				Actions: []rollout.Action{patchV2}}}, rollbackOn)
			s.now = started.Add(2 * revertDeadline(s.cv))
			return s
		}(),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated, Actions: 1},
	}, {
		name: "rolled back: recorded as RolledBack, the digest failed",
		snap: underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: progress(rollout.Succeeded, "")}}, rollbackOn),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeRolledBack, Write: true,
			Effects: []string{"event " + ReasonRolloutFailed, "event " + ReasonRolledBack, "notify " + notify.RolledBack}},
	}, {
		name: "timeout: an unfinished rollout past its deadline fails",
		snap: underWay(rollingOut(t0.Add(-10*time.Minute)), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.InProgress, "WaitingForWorkloads")}}),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true,
			Effects: []string{"event " + ReasonRolloutFailed, "notify " + notify.Failed}},
	}, {
		name: "timeout with rollback.enabled: RollingBack, the strategy's pending writes not made",
		snap: underWay(rollingOut(t0.Add(-10*time.Minute)), stubPlanner{forward: rollout.Plan{
			Progress: progress(rollout.InProgress, "WaitingForWorkloads"), Actions: []rollout.Action{patchWeb}}}, rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated, Write: true},
		check: func(t *testing.T, d decision) {
			if reason, _ := conditionOf(d, cvv1.ConditionProgressing); reason != "Timeout" {
				t.Errorf("Progressing reason %q, want Timeout (the rollback's record says why)", reason)
			}
		},
	}, {
		name: "rollback: RollingBack while it writes, then WaitingForPrevious while blue-green's old side becomes Ready",
		snap: underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: progress(rollout.InProgress, "WaitingForPrevious")}}, rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepMigrated},
		check: func(t *testing.T, d decision) {
			if d.requeue != 2*time.Second {
				t.Errorf("requeue %s, want the progress interval: the old side is looked at again", d.requeue)
			}
		},
	}, {
		name: "rollback: still WaitingForPrevious past the revert's deadline: Failed, not rolled back, no longer RollingBack",
		snap: func() *snapshot {
			s := underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: progress(rollout.InProgress, "WaitingForPrevious")}}, rollbackOn)
			s.now = started.Add(revertDeadline(s.cv))
			return s
		}(),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true,
			Effects: []string{"event " + ReasonRolloutFailed, "notify " + notify.Failed}},
		check: func(t *testing.T, d decision) {
			if len(d.actions) != 0 {
				t.Errorf("actions %v: a revert given up writes nothing more", d.actions)
			}
			if _, msg := conditionOf(d, cvv1.ConditionReady); !strings.Contains(msg, "not rolled back: the revert had not finished") {
				t.Errorf("Ready message %q does not say the revert ran out of time", msg)
			}
		},
	}, {
		name: "rollback: NeitherRunsPrevious when neither Deployment runs the previous digest: Failed, not rolled back",
		snap: underWay(rollingBack(started), stubPlanner{revert: rollout.Plan{Progress: rollout.Progress{
			Phase: rollout.Failed, Reason: "NeitherRunsPrevious", Message: neither}}}, rollbackOn),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true,
			Effects: []string{"event " + ReasonRolloutFailed, "notify " + notify.Failed}},
		check: func(t *testing.T, d decision) {
			if d.rolledBack != "" {
				t.Errorf("rolledBack %q: nothing was restored, so nothing may be written back as restored", d.rolledBack)
			}
			if _, msg := conditionOf(d, cvv1.ConditionReady); !strings.Contains(msg, "not rolled back: "+neither) {
				t.Errorf("Ready message %q does not say why it was not rolled back", msg)
			}
		},
	}, {
		name: "misconfigured: the rollout ends without blaming the version",
		snap: underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: func() rollout.Progress {
			p := progress(rollout.Failed, "NoMatchingWorkloads")
			p.Misconfigured = true
			return p
		}()}}),
		want: outcome{Status: cvv1.StatusFailed, Write: true, Effects: []string{"event " + ReasonMisconfigured}},
	}, {
		name: "rollback target refused by its signature: failed, not rolled back",
		snap: func() *snapshot {
			s := underWay(rollingOut(started), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.Failed, "CrashLoopBackOff")}}, rollbackOn)
			s.rollout.rollbackRefused = "rollback target v1 refused: unsigned"
			return s
		}(),
		want: outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true,
			Effects: []string{"event " + ReasonSignatureRefused, "event " + ReasonRolloutFailed, "notify " + notify.Failed}},
	}, {
		name: "the author lost a right mid-rollout: it ends, the version is not blamed",
		snap: func() *snapshot {
			s := underWay(rollingOut(started), stubPlanner{})
			s.rollout.authz = authzResult{checked: true, refused: "author alice may not patch deployments.apps/web"}
			return s
		}(),
		want: outcome{Status: cvv1.StatusFailed, Write: true, Effects: []string{"event " + ReasonForbidden}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := plan(tc.snap)
			if diff := cmp.Diff(tc.want, summarise(tc.snap, d)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// stageJob is the Job of a verification or migration step of the rollout
// of v2, created after the rollout started, with the given condition
// (none: running).
func stageJob(phase, step string, cond batchv1.JobConditionType, reason string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rollout.JobName("web", phase, step, digest2),
		UID: "job-uid", CreationTimestamp: metav1.NewTime(t0)}}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Reason: reason}}
	}
	return j
}

// preparing is a rollout of v2 recorded at step, with the real Lifecycle
// over jobs; its strategy would patch Deployment web (patchWeb) if planned.
func preparing(step string, jobs []*batchv1.Job, edit ...func(*cvv1.ContainerVersionSpec)) *snapshot {
	st := rollingOut(t0.Add(-10 * time.Second))
	st.Rollout.Step = step
	s := underWay(st, stubPlanner{forward: rollout.Plan{Progress: progress(rollout.InProgress, "WaitingForWorkloads"),
		Actions: []rollout.Action{patchWeb}}}, edit...)
	s.rollout.world.Jobs = map[string]*batchv1.Job{}
	for _, j := range jobs {
		s.rollout.world.Jobs[j.Name] = j
	}
	return s
}

// TestPlanBeforeTheStrategy: the stages of docs/strategies.md before the
// strategy (pre-rollout verification, migrations) through plan with the
// real Lifecycle, from the step each starts at. A failure there fails the
// rollout without touching a workload, whatever spec.rollback says; only a
// migration's onFailure: Rollback puts the workloads back.
func TestPlanBeforeTheStrategy(t *testing.T) {
	verify := func(s *cvv1.ContainerVersionSpec) {
		s.Container.Verify = []cvv1.VerifySpec{{Kind: "Image", Image: "reg.example/scan@" + digest1}}
	}
	migration := func(onFailure string) func(*cvv1.ContainerVersionSpec) {
		return func(s *cvv1.ContainerVersionSpec) {
			s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "schema", OnFailure: onFailure,
				Template: &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "placeholder"}}}}}}}}}
		}
	}
	rollbackOn := func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }
	verifyJob, schemaJob := rollout.JobName("web", rollout.PhaseVerifyBefore, "1", digest2), rollout.JobName("web", rollout.PhaseMigrate, "schema", digest2)
	failed := []string{"event " + ReasonRolloutFailed, "notify " + notify.Failed}
	for _, tc := range []struct {
		name   string
		snap   *snapshot
		want   outcome
		did    []string // the actions' descriptions
		reason string   // the Progressing condition's reason
	}{{
		name: "1. pre-rollout verification: each container.verify[] runs as a Job, no workload touched",
		snap: preparing(rollout.StepStarted, nil, verify, migration("Abort"), rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepStarted, Actions: 1},
		did:  []string{"create Job " + verifyJob},
	}, {
		name: "1. pre-rollout verification failed with rollback.enabled: rollout Failed; no workload touched",
		snap: preparing(rollout.StepStarted, []*batchv1.Job{stageJob(rollout.PhaseVerifyBefore, "1", batchv1.JobFailed, "BackoffLimitExceeded")},
			verify, migration("Abort"), rollbackOn),
		want:   outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true, Effects: failed},
		reason: "VerificationFailed",
	}, {
		name: "1. verified: PreVerified recorded; 2. migrations: each preRollout.jobs[] runs as a Job with the new image",
		snap: preparing(rollout.StepStarted, []*batchv1.Job{stageJob(rollout.PhaseVerifyBefore, "1", batchv1.JobComplete, "")},
			verify, migration("Abort"), rollbackOn),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepPreVerified, Write: true, Actions: 1},
		did:  []string{"create Job " + schemaJob},
	}, {
		name: "2. migration failed, onFailure Abort with rollback.enabled: Failed, no workload touched",
		snap: preparing(rollout.StepPreVerified, []*batchv1.Job{stageJob(rollout.PhaseMigrate, "schema", batchv1.JobFailed, "BackoffLimitExceeded")},
			verify, migration("Abort"), rollbackOn),
		want:   outcome{Status: cvv1.StatusFailed, Failed: digest2, Record: history.OutcomeFailed, Write: true, Effects: failed},
		reason: "MigrationFailed",
	}, {
		name: "2. migration failed, onFailure Rollback: Failed and workloads put back on status.successDigest (rollback.enabled off)",
		snap: preparing(rollout.StepPreVerified, []*batchv1.Job{stageJob(rollout.PhaseMigrate, "schema", batchv1.JobFailed, "BackoffLimitExceeded")},
			verify, migration("Rollback")),
		want:   outcome{Status: cvv1.StatusProgressing, Rollout: true, RollingBack: true, Step: rollout.StepPreVerified, Write: true},
		reason: "MigrationFailed",
	}, {
		name: "2. migrated: Migrated recorded; 3. the strategy runs in the same sync",
		snap: preparing(rollout.StepPreVerified, []*batchv1.Job{stageJob(rollout.PhaseMigrate, "schema", batchv1.JobComplete, "")},
			verify, migration("Abort")),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Write: true, Actions: 1},
		did:  []string{patchWeb.Describe()},
	}, {
		name: "a controller restarted at Migrated never redoes a finished stage (its Jobs cleaned up)",
		snap: preparing(rollout.StepMigrated, nil, verify, migration("Abort")),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Actions: 1},
		did:  []string{patchWeb.Describe()},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := plan(tc.snap)
			if diff := cmp.Diff(tc.want, summarise(tc.snap, d)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.did, described(d.actions)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if reason, _ := conditionOf(d, cvv1.ConditionProgressing); tc.reason != "" && reason != tc.reason {
				t.Errorf("Progressing reason %q, want %q", reason, tc.reason)
			}
		})
	}
}

// TestBlueGreenIdleColourAtRestIsNotDrift: after a blue-green rollout the
// idle colour keeps the previous version on purpose (it is what a rollback
// switches back to), so a CV at rest finds no drift there. The same
// Deployments under Simple are drift, which shows the check looks at them.
func TestBlueGreenIdleColourAtRestIsNotDrift(t *testing.T) {
	live := annotated(gen.ColorDeployment(ns, "web", "green", pinned("v1", digest1), 2), pinned("v1", digest1))
	idle := annotated(gen.ColorDeployment(ns, "web", "blue", pinned("v0", digest2), 0), pinned("v0", digest2))
	deployments := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{workload.LabelIndex: workload.LabelPairKeys})
	for _, d := range []*appsv1.Deployment{live, idle} {
		if err := deployments.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	empty := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{workload.LabelIndex: workload.LabelPairKeys})
	}
	c := &Controller{clock: clocktesting.NewFakeClock(t0),
		workloads: workload.Listers{Deployments: deployments, StatefulSets: empty(), DaemonSets: empty(), CronJobs: empty()}}

	simple := webCV(polled(), func(s *cvv1.ContainerVersionSpec) { s.DriftPolicy = cvv1.DriftReport })
	selected, err := c.selectWorkloads(simple)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.observeRest(context.Background(), simple, selected)
	if err != nil || o == nil || len(o.drifted) != 1 || o.drifted[0].w.Name() != "web-blue" {
		t.Fatalf("Simple: rest %+v, err %v; want web-blue reported as drifted", o, err)
	}

	blueGreen := webCV(polled(), gen.BlueGreen("web", "reg.example/smoke@"+digest1))
	o, err = c.observeRest(context.Background(), blueGreen, selected)
	if err != nil || o != nil {
		t.Fatalf("ServiceBlueGreen at rest: err %v, rest observed (%d drifted, starts a rollout: %v); want none (the idle colour is not drift)",
			err, len(o.drifted), o.startsRollout)
	}
	snap := polledSnap(polled(), pollObservation{img: poller.ResolvedImage{Digest: digest1}, action: syncer.Nothing})
	snap.cv = blueGreen
	if diff := cmp.Diff(outcome{Status: cvv1.StatusSuccess}, summarise(snap, plan(snap))); diff != "" {
		t.Errorf("ServiceBlueGreen at rest (-want +got):\n%s", diff)
	}
}

func TestPlanPollTransitions(t *testing.T) {
	moved := pollObservation{img: poller.ResolvedImage{Digest: digest2, Version: "v2"}, action: syncer.StartRollout, version: "v2"}
	unsigned := moved
	unsigned.signature = signatureVerdict{applies: true, enforce: true, result: verify.Result{Reason: verify.ReasonUnsigned, Message: "no signature"}}
	held := moved
	held.verdict = policy.Verdict{Reason: "AwaitingRelease", Message: "releaseMode is Manual"}
	heldAgain := polledSnap(func() cvv1.ContainerVersionStatus {
		s := polled()
		s.AvailableVersion, s.AvailableDigest, s.AvailableSince = "v2", digest2, &metav1.Time{Time: t0.Add(-time.Minute)}
		s.Conditions = []metav1.Condition{{Type: cvv1.ConditionReleaseBlocked, Status: metav1.ConditionTrue,
			Reason: "AwaitingRelease", Message: "releaseMode is Manual"}}
		return s
	}(), held)
	for _, tc := range []struct {
		name string
		snap *snapshot
		want outcome
	}{{
		name: "a moved tag: the intent, with the rollout's first step; nothing touched yet",
		snap: polledSnap(polled(), moved),
		want: outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Write: true,
			Effects: []string{"event " + ReasonRolloutStarted, "notify " + notify.Started}},
	}, {
		name: "unchanged and polled recently: nothing written",
		snap: polledSnap(polled(), pollObservation{img: poller.ResolvedImage{Digest: digest1}, action: syncer.Nothing}),
		want: outcome{Status: cvv1.StatusSuccess},
	}, {
		name: "unchanged, lastPolled old: lastPolled written",
		snap: polledSnap(deployed(), pollObservation{img: poller.ResolvedImage{Digest: digest1}, action: syncer.Nothing}),
		want: outcome{Status: cvv1.StatusSuccess, Write: true},
	}, {
		name: "held by the release policy: shown as available, one Event",
		snap: polledSnap(polled(), held),
		want: outcome{Status: cvv1.StatusSuccess, Blocked: "AwaitingRelease", Write: true,
			Effects: []string{"event " + ReasonReleaseBlocked, "notify " + notify.Blocked}},
	}, {
		name: "held again: already reported, nothing written",
		snap: heldAgain,
		want: outcome{Status: cvv1.StatusSuccess, Blocked: "AwaitingRelease"},
	}, {
		name: "unsigned under Enforce: refused, recorded as Blocked",
		snap: polledSnap(polled(), unsigned),
		want: outcome{Status: cvv1.StatusSuccess, Blocked: verify.ReasonUnsigned, Record: history.OutcomeBlocked, Write: true,
			Effects: []string{"event " + ReasonSignatureRefused, "notify " + notify.Blocked}},
	}, {
		name: "registry error: Degraded with one Event",
		snap: polledSnap(polled(), pollObservation{err: errors.New("503")}),
		want: outcome{Status: cvv1.StatusSuccess, Write: true, Effects: []string{"event " + ReasonRegistryError}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarise(tc.snap, plan(tc.snap))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanLogsWhyTheRegistryFailed: the log line of a failed poll says what
// failed, as the Event does (an operator reading logs alone sees the cause).
func TestPlanLogsWhyTheRegistryFailed(t *testing.T) {
	d := plan(polledSnap(polled(), pollObservation{err: errors.New("503 Service Unavailable")}))
	for _, e := range d.effects {
		if e.log == "Registry error" {
			if !strings.Contains(e.detail, "503 Service Unavailable") {
				t.Errorf("log detail %q lacks the registry's answer", e.detail)
			}
			return
		}
	}
	t.Error("no log effect for the failed poll")
}

func TestPlanRequestsAreServedOnlyByAPoll(t *testing.T) {
	req := request("web-a", cvv1.RequestClearFailed, history.TriggerClearFailed)
	failed := polled()
	failed.FailedDigest = digest2
	atRest := polledSnap(failed, pollObservation{img: poller.ResolvedImage{Digest: digest1}, action: syncer.Nothing})
	atRest.requests = []*cvv1.ContainerVersionRequest{req}
	if d := plan(atRest); !d.consumed || d.cv.Status.FailedDigest != "" {
		t.Errorf("a poll for clear-failed: consumed %v failedDigest %q; want consumed and cleared", d.consumed, d.cv.Status.FailedDigest)
	}
	recheck := polledSnap(polled(), pollObservation{img: poller.ResolvedImage{Digest: digest1}, recheck: true})
	recheck.requests = []*cvv1.ContainerVersionRequest{req}
	if d := plan(recheck); d.consumed {
		t.Error("a push event's digest not served yet: the request must wait")
	}
	during := underWay(rollingOut(t0.Add(-time.Second)), stubPlanner{forward: rollout.Plan{Progress: progress(rollout.InProgress, "")}})
	during.requests = []*cvv1.ContainerVersionRequest{req}
	if d := plan(during); d.consumed || d.cv.Status.FailedDigest != "" {
		t.Error("a request during a rollout must wait for it to finish")
	}
}

func TestPlanDrift(t *testing.T) {
	v1 := pinned("v1", digest1)
	drifted := mismatch{w: workload.Workload{Kind: workload.Deployment, Object: webDeployment(repo+":v0", true)}, running: repo + ":v0"}
	joined := drifted
	joined.joined = true
	rest := func(o restObservation, edit ...func(*cvv1.ContainerVersionSpec)) *snapshot {
		o.target = rollout.Target{Version: "v1", Digest: digest1, Image: v1}
		o.restoreImage = poller.ResolvedImage{Digest: digest1, Version: "v1"}
		o.needed = true
		return &snapshot{cv: webCV(polled(), edit...), now: t0, rest: &o}
	}
	report := func(s *cvv1.ContainerVersionSpec) { s.DriftPolicy = cvv1.DriftReport }
	for _, tc := range []struct {
		name string
		snap *snapshot
		want outcome
	}{
		{"drifted: restored with trigger drift", rest(restObservation{drifted: []mismatch{drifted}}),
			outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Write: true,
				Effects: []string{"event " + ReasonDriftDetected, "event " + ReasonRolloutStarted, "notify " + notify.Started}}},
		{"drifted under Report: reported, untouched", rest(restObservation{drifted: []mismatch{drifted}}, report),
			outcome{Status: cvv1.StatusSuccess, Write: true, Effects: []string{"event " + ReasonDriftDetected}}},
		{"drifted again after the fight limit: stopped, the other writer named", rest(restObservation{drifted: []mismatch{drifted}, wouldFight: true, otherManager: "argocd"}),
			outcome{Status: cvv1.StatusSuccess, Write: true, Effects: []string{"event " + ReasonDriftFight}}},
		{"joined: rolled out with trigger join", rest(restObservation{joined: []mismatch{joined}}),
			outcome{Status: cvv1.StatusProgressing, Rollout: true, Step: rollout.StepMigrated, Write: true,
				Effects: []string{"event " + ReasonWorkloadJoined, "event " + ReasonRolloutStarted, "notify " + notify.Started}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarise(tc.snap, plan(tc.snap))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestReportedDriftStillPolls: a drift already reported under Report
// changes nothing, so the sync goes on to the poll instead of stopping at
// the workloads: a CV whose drift is only reported keeps following its tag.
func TestReportedDriftStillPolls(t *testing.T) {
	drifted := mismatch{w: workload.Workload{Kind: workload.Deployment, Object: webDeployment(repo+":v0", true)}, running: repo + ":v0"}
	o := &restObservation{drifted: []mismatch{drifted}, target: rollout.Target{Version: "v1", Digest: digest1, Image: pinned("v1", digest1)}}
	cv := webCV(polled(), func(s *cvv1.ContainerVersionSpec) { s.DriftPolicy = cvv1.DriftReport })
	if !restChangesStatus(cv, o) {
		t.Fatal("a first report must be written")
	}
	d := decision{cv: cv.DeepCopy()}
	planRest(&snapshot{cv: cv, rest: o, now: t0}, &d)
	if restChangesStatus(d.cv, o) {
		t.Error("the same report again: nothing changes, the sync must go on to the poll")
	}
	o.drifted = nil
	if !restChangesStatus(d.cv, o) {
		t.Error("drift gone: the Drifted condition must be cleared")
	}
}

// TestPlanImport: a CV created by `state import` restores its exported
// last-known-good version first, once; a CV with status ignores the mark.
func TestPlanImport(t *testing.T) {
	cv := webCV(cvv1.ContainerVersionStatus{})
	cv.Annotations = map[string]string{cvv1.AnnotationImported: "v7@" + digest1}
	target := importedTarget(cv)
	if target == nil || target.Version != "v7" || target.Digest != digest1 {
		t.Fatalf("import mark read as %+v", target)
	}
	snap := &snapshot{cv: cv, now: t0, imported: target}
	d := plan(snap)
	st := d.cv.Status
	want := outcome{Status: cvv1.StatusProgressing, Rollout: true, Write: true, Effects: []string{"event " + ReasonRolloutStarted}}
	if diff := cmp.Diff(want, summarise(snap, d)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st.SuccessDigest != digest1 || st.Rollout.Trigger != history.TriggerImport || st.Rollout.Digest != digest1 {
		t.Errorf("status %+v: want v7 as success version and an import rollout of it", st)
	}
	cv.Status = st
	if importedTarget(cv) != nil {
		t.Error("the mark must be acted on once: a CV with status ignores it")
	}
	for _, bad := range []string{"v7", "v7@", "@" + digest1, "v7@md5:abc"} {
		cv := webCV(cvv1.ContainerVersionStatus{})
		cv.Annotations = map[string]string{cvv1.AnnotationImported: bad}
		if importedTarget(cv) != nil {
			t.Errorf("mark %q should be ignored", bad)
		}
	}
}

// TestMinAgeHoldsAYoungDigest: under spec.policy.minAge a digest first
// seen now (no build time known) is held, shown as available with the
// time it becomes eligible, and the CV is looked at again then; a sync at
// that time rolls it out.
func TestMinAgeHoldsAYoungDigest(t *testing.T) {
	young := func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: time.Hour}}
	}
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, webCV(neverPolled(), young),
		annotated(webDeployment(pinned("v1", digest1), true), pinned("v1", digest1)))
	f.sync("web")
	st := f.lastStatus()
	blocked := findCondition(st.Conditions, cvv1.ConditionReleaseBlocked)
	if st.Rollout != nil || blocked == nil || blocked.Reason != cvv1.ReasonMinAge {
		t.Fatalf("a digest first seen now must be held by minAge: rollout %+v, ReleaseBlocked %+v", st.Rollout, blocked)
	}
	if st.HeldUntil == nil || !st.HeldUntil.Time.Equal(t0.Add(time.Hour)) || st.AvailableDigest != digest2 {
		t.Fatalf("heldUntil %v available %s; want %s and digest2", st.HeldUntil, st.AvailableDigest, t0.Add(time.Hour))
	}
	if st.AvailableSince == nil || !st.AvailableSince.Time.Equal(t0) {
		t.Fatalf("availableSince %v, want the first sighting %s persisted", st.AvailableSince, t0)
	}
	cv, err := f.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Hour)
	snap, err := f.c.observe(context.Background(), f.c.syncerFor(ns+"/web"), cv)
	if err != nil {
		t.Fatal(err)
	}
	d := plan(snap)
	if st := d.cv.Status; st.Rollout == nil || st.Rollout.Digest != digest2 || st.HeldUntil != nil || st.AvailableSince != nil {
		t.Errorf("an hour later the digest must roll out and the hold clear: rollout %+v heldUntil %v availableSince %v",
			st.Rollout, st.HeldUntil, st.AvailableSince)
	}
}

// minAgeCV is web under spec.policy.minAge d.
func minAgeCV(st cvv1.ContainerVersionStatus, d time.Duration) *cvv1.ContainerVersion {
	return webCV(st, func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: d}}
	})
}

// TestMinAgeChangeWhileHeldKeepsTheFirstSighting: spec.policy.minAge
// raised from 1h to 2h half an hour into a hold moves the eligible time to
// two hours after the first sighting (status.availableSince), shown in
// heldUntil and the condition without a second Event or notification.
func TestMinAgeChangeWhileHeldKeepsTheFirstSighting(t *testing.T) {
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, minAgeCV(neverPolled(), time.Hour),
		annotated(webDeployment(pinned("v1", digest1), true), pinned("v1", digest1)))
	f.sync("web")
	if st := f.lastStatus(); st.AvailableSince == nil || !st.AvailableSince.Time.Equal(t0) {
		t.Fatalf("availableSince %v, want %s", st.AvailableSince, t0)
	}
	cv, err := f.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cv.Spec.Policy.MinAge.Duration = 2 * time.Hour
	f.clock.Step(30 * time.Minute)
	snap, err := f.c.observe(context.Background(), f.c.syncerFor(ns+"/web"), cv)
	if err != nil {
		t.Fatal(err)
	}
	d := plan(snap)
	st := d.cv.Status
	if st.Rollout != nil || st.AvailableSince == nil || !st.AvailableSince.Time.Equal(t0) ||
		st.HeldUntil == nil || !st.HeldUntil.Time.Equal(t0.Add(2*time.Hour)) || d.requeue != 90*time.Minute {
		t.Fatalf("rollout %+v availableSince %v heldUntil %v requeue %s; want held since %s until %s, looked at in 90m",
			st.Rollout, st.AvailableSince, st.HeldUntil, d.requeue, t0, t0.Add(2*time.Hour))
	}
	if _, msg := conditionOf(d, cvv1.ConditionReleaseBlocked); !strings.Contains(msg, t0.Add(2*time.Hour).Format(time.RFC3339)) {
		t.Errorf("ReleaseBlocked message %q, want the new eligible time", msg)
	}
	want := outcome{Status: cvv1.StatusSuccess, Blocked: cvv1.ReasonMinAge, Write: true}
	if diff := cmp.Diff(want, summarise(snap, d)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMinAgeHoldFromBeforeAvailableSince: a CV held by minAge by a
// cvmanager without status.availableSince dated the first sighting only
// through heldUntil. The first sync dates it heldUntil - minAge, once, and
// reports nothing new; from then on the recorded sighting counts.
func TestMinAgeHoldFromBeforeAvailableSince(t *testing.T) {
	seen, until := t0.Add(-50*time.Minute), t0.Add(10*time.Minute)
	st := neverPolled()
	st.AvailableVersion, st.AvailableDigest, st.HeldUntil = "v2", digest2, &metav1.Time{Time: until}
	message := "the image (first seen " + seen.Format(time.RFC3339) + ") is younger than policy.minAge 1h0m0s; eligible at " + until.Format(time.RFC3339)
	st.Conditions = []metav1.Condition{{Type: cvv1.ConditionReleaseBlocked, Status: metav1.ConditionTrue, Reason: cvv1.ReasonMinAge,
		Message: message, LastTransitionTime: metav1.Time{Time: seen}}}
	f := newFixture(t, poller.ResolvedImage{Digest: digest2, Version: "v2"}, minAgeCV(st, time.Hour),
		annotated(webDeployment(pinned("v1", digest1), true), pinned("v1", digest1)))
	f.sync("web")
	got := f.lastStatus()
	if got.AvailableSince == nil || !got.AvailableSince.Time.Equal(seen) || got.HeldUntil == nil || !got.HeldUntil.Time.Equal(until) {
		t.Fatalf("availableSince %v heldUntil %v; want %s and %s", got.AvailableSince, got.HeldUntil, seen, until)
	}
	if diff := cmp.Diff(st.Conditions, got.Conditions); diff != "" {
		t.Errorf("the hold was reported again (-want +got):\n%s", diff)
	}
	if events := f.events(); len(events) != 0 {
		t.Errorf("events %v, want none", events)
	}
}

// TestMinAgeHoldLooksAgainWhenOldEnough: a minAge hold, new or already
// reported, asks to look at the CV again when the digest becomes eligible.
func TestMinAgeHoldLooksAgainWhenOldEnough(t *testing.T) {
	until := t0.Add(time.Hour)
	o := pollObservation{img: poller.ResolvedImage{Digest: digest2, Version: "v2"}, action: syncer.StartRollout, version: "v2",
		verdict: policy.Verdict{Reason: cvv1.ReasonMinAge, Message: "too young"}, heldUntil: &until}
	first := plan(polledSnap(polled(), o))
	if first.requeue != time.Hour || first.cv.Status.HeldUntil == nil {
		t.Fatalf("first hold: requeue %s heldUntil %v, want 1h and a time", first.requeue, first.cv.Status.HeldUntil)
	}
	if since := first.cv.Status.AvailableSince; since == nil || !since.Time.Equal(t0) {
		t.Fatalf("first hold: availableSince %v, want %s", since, t0)
	}
	again := plan(polledSnap(first.cv.Status, o))
	if again.statusChanged(polledSnap(first.cv.Status, o)) || again.requeue != time.Hour {
		t.Errorf("hold already reported: want no write and the same requeue, got requeue %s", again.requeue)
	}
}

// TestReplanEndsLikeEveryPlan: a Job the executor could not create fails
// the rollout in apply (replan). That decision carries the provenance read
// since the last status write, as plan's do: the rollback it starts writes
// status, and the provenance rides along rather than waiting for a later
// write.
func TestReplanEndsLikeEveryPlan(t *testing.T) {
	snap := underWay(rollingOut(t0.Add(-10*time.Second)), stubPlanner{}, func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true })
	snap.provenance, snap.provenanceDigest = &cvv1.Provenance{Revision: "abc123"}, digest2
	d := replan(snap, progress(rollout.Failed, "JobInvalid"))
	r := d.cv.Status.Rollout
	if r == nil || !r.RollingBack {
		t.Fatalf("rollout %+v, want a rollback under way", r)
	}
	if r.Provenance == nil || r.Provenance.Revision != "abc123" {
		t.Errorf("rollout provenance %+v, want the revision read since the last write", r.Provenance)
	}
}
