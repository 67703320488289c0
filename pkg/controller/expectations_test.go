package controller

import (
	"testing"
	"time"

	"cvmanager.dev/cvmanager/pkg/rollout"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// TestPatchExpectations: a patch made is not made again while the cache
// still holds the object it was made to, is made again once that object
// changed or the expectation expired, and other actions always pass.
func TestPatchExpectations(t *testing.T) {
	d := webDeployment(pinned("v1", digest1), true)
	d.ResourceVersion = "7"
	patch := rollout.PatchImage{Workload: workload.Workload{Kind: workload.Deployment, Object: d}, Container: "app", Image: pinned("v2", digest2)}
	other := rollout.DeleteJob{}
	var e patchExpectations
	e.made([]rollout.Action{patch}, t0)
	if got := e.pending([]rollout.Action{patch, other}, t0.Add(time.Second)); len(got) != 1 {
		t.Errorf("the cache lags: want only the other action, got %d actions", len(got))
	}
	moved := d.DeepCopy()
	moved.ResourceVersion = "8"
	again := patch
	again.Workload.Object = moved
	if got := e.pending([]rollout.Action{again}, t0.Add(time.Second)); len(got) != 1 {
		t.Error("the cache moved on and still plans the patch: it must be made")
	}
	if got := e.pending([]rollout.Action{patch}, t0.Add(expectationTTL)); len(got) != 1 {
		t.Error("an expired expectation must not hold a patch back")
	}
	rollback := patch
	rollback.Image = pinned("v1", digest1)
	if got := e.pending([]rollout.Action{rollback}, t0.Add(time.Second)); len(got) != 1 {
		t.Error("a patch to another image must be made")
	}
}
