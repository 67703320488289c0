package faults

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

// killPoint is a named step of a rollout at which the controller is killed
// with SIGKILL. Blue-green and migration steps (status.rollout.step values)
// are added as rows: a freeze that holds the rollout at the step, and a
// predicate that recognises it.
type killPoint struct {
	name string
	// slow keeps the Deployment un-Available for a while after each patch
	// (minReadySeconds), so a rollout stays open between patch and success.
	slow bool
	// before runs with the first controller up, ahead of the freeze (e.g. a
	// first successful version, so a later failure has something to roll
	// back to). It returns the digest of that version, if any.
	before func(f *fixture) string
	// freeze holds the rollout at the step (see fixture.freeze).
	freeze *freezeSpec
	// version is pushed to start the rollout under test.
	version string
	// reached recognises the step in the CV's status and the cluster.
	reached func(f *fixture, cv *cvv1.ContainerVersion) bool
	// want is the end state after the restarted controller finishes.
	wantStatus   string
	rollsBack    bool // the workload ends on before()'s version
	wantPatches  int64
	wantOutcomes []string
}

type freezeSpec struct {
	group     string
	resources []string
	// allow is a CEL expression; %s is replaced by the digest of before().
	allow string
}

var deploymentsFrozen = &freezeSpec{group: "apps", resources: []string{"deployments"}, allow: "false"}

// killPoints are the steps of a Simple rollout.
var killPoints = []killPoint{{
	name:    "rollout recorded in status, workload not yet patched",
	freeze:  deploymentsFrozen,
	version: "v1",
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && f.patches() == 0
	},
	wantStatus: cvv1.StatusSuccess, wantPatches: 1, wantOutcomes: []string{"Success"},
}, {
	name:    "workload patched, rollout not finished",
	slow:    true,
	version: "v1",
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && f.patches() == 1
	},
	wantStatus: cvv1.StatusSuccess, wantPatches: 1, wantOutcomes: []string{"Success"},
}, {
	name: "history recorded, status not yet finished",
	freeze: &freezeSpec{group: cvv1.SchemeGroupVersion.Group, resources: []string{"containerversions", "containerversions/status"},
		allow: "(has(object.status) && has(object.status.rollout)) || !(has(oldObject.status) && has(oldObject.status.rollout))"},
	version: "v1",
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && len(f.History(f.app)) == 1
	},
	wantStatus: cvv1.StatusSuccess, wantPatches: 1, wantOutcomes: []string{"Success"},
}, {
	name: "rolling back, previous version not yet restored",
	before: func(f *fixture) string {
		return f.rollOut("v1", 60*time.Second)
	},
	// Refuses only the revert: any write putting the first version back.
	freeze: &freezeSpec{group: "apps", resources: []string{"deployments"},
		allow: "object.spec.template.spec.containers.all(c, !c.image.contains('%s'))"},
	version: "v2-unready", // kwok keeps pods of this image un-Ready: the rollout fails
	reached: func(f *fixture, cv *cvv1.ContainerVersion) bool {
		return cv.Status.Rollout != nil && cv.Status.Rollout.RollingBack
	},
	wantStatus: cvv1.StatusFailed, rollsBack: true, wantPatches: 3, wantOutcomes: []string{"RolledBack", "Success"},
}}

// TestKillAtEachStepResumesAndFinishesOnce kills the real controller with
// SIGKILL at every named step of a Simple rollout, starts a new process and
// asserts the rollout finishes exactly once: no second patch, no lost or
// duplicated history record, no second start.
func TestKillAtEachStepResumesAndFinishesOnce(t *testing.T) {
	for i, kp := range killPoints {
		t.Run(kp.name, func(t *testing.T) {
			runKillPoint(t, fmt.Sprintf("crash%d", i), kp)
		})
	}
}

func runKillPoint(t *testing.T, app string, kp killPoint) {
	f := newFixture(t, app, func(d *appsv1.Deployment) {
		if kp.slow {
			d.Spec.MinReadySeconds = 4
		}
	})
	f.createCV()
	first := f.startController("first")
	var before string
	if kp.before != nil {
		before = kp.before(f)
	}
	unfreeze := func() {}
	if kp.freeze != nil {
		allow := kp.freeze.allow
		if before != "" {
			allow = fmt.Sprintf(allow, before)
		}
		unfreeze = f.freeze(app, kp.freeze.group, kp.freeze.resources, allow)
	}
	pushed := f.push(kp.version)
	f.Eventually(60*time.Second, "kill point: "+kp.name, func() (bool, error) {
		cv := f.cv()
		return kp.reached(f, cv), fmt.Errorf("status %+v rollout %+v, %d patches", cv.Status.CurrStatus, cv.Status.Rollout, f.patches())
	})
	first.kill9()
	unfreeze()
	if !kp.reached(f, f.cv()) {
		t.Fatalf("state moved on after the kill; the test no longer covers %q", kp.name)
	}

	f.startController("restarted")
	// currDigest names the version rolled out last, even a failed one.
	cv := f.WaitStatus(app, kp.wantStatus, pushed, 90*time.Second)
	wantImage := gen.Pinned(f.repo, kp.version, pushed)
	if kp.rollsBack {
		wantImage = gen.Pinned(f.repo, "v1", before)
	}
	if got := f.DeploymentImage(app); got != wantImage {
		t.Errorf("workload runs %s, want %s", got, wantImage)
	}
	f.assertOnce(kp.wantPatches, kp.wantOutcomes...)
	t.Logf("finished: %s %s, %d patches", cv.Status.CurrStatus, cv.Status.CurrVersion, f.patches())
}
