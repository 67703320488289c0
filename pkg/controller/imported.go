package controller

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/rollout"
)

// ReasonImported is the Progressing condition reason of an imported CV
// whose last-known-good version is being restored.
const ReasonImported = "Imported"

// importedTarget is the last-known-good version a CV created by `state
// import` names in its import mark, when the CV has no status yet (the
// mark is acted on once: afterwards status carries the version). A mark
// that does not parse is ignored: the CV then just follows its tag.
func importedTarget(cv *cvv1.ContainerVersion) *rollout.Target {
	mark := cv.Annotations[cvv1.AnnotationImported]
	st := cv.Status
	if mark == "" || st.CurrDigest != "" || st.SuccessDigest != "" || st.Rollout != nil {
		return nil
	}
	version, digest, ok := strings.Cut(mark, "@")
	if !ok || version == "" || !strings.HasPrefix(digest, "sha256:") {
		return nil
	}
	target, err := pinnedTarget(cv.Spec.ImageRepo, version, digest)
	if err != nil {
		return nil
	}
	return &target
}

// planImport records the last-known-good version of an imported CV as its
// success version (the rollback target and the downgrade baseline) and as
// a rollout under way with trigger import, so the new cluster's workloads
// are first set to exactly the exported digest; only then does the CV
// follow its tag again.
func planImport(snap *snapshot, d *decision) {
	t := snap.imported
	now := metav1.NewTime(snap.now)
	st := &d.cv.Status
	st.SuccessVersion, st.SuccessDigest = t.Version, t.Digest
	st.CurrVersion, st.CurrDigest = t.Version, t.Digest
	st.Rollout = &cvv1.RolloutStatus{Version: t.Version, Digest: t.Digest, Trigger: history.TriggerImport, StartTime: now}
	st.Rollout.ID = newRolloutID(d.cv, st.Rollout)
	setCurrStatus(d.cv, cvv1.StatusProgressing, snap.now)
	setCondition(d.cv, cvv1.ConditionProgressing, metav1.ConditionTrue, ReasonImported,
		fmt.Sprintf("restoring the last-known-good version %s (%s) from an exported state", t.Version, t.Digest), snap.now)
	d.effects = append(d.effects, normal(ReasonRolloutStarted,
		fmt.Sprintf("Restoring the imported last-known-good %s (%s)", t.Version, t.Digest)), effect{log: "Rollout started"})
}
