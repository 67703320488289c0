package writeback

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

var planNow = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

// planCV is a CV at rest on v2 with write-back configured; edit adjusts it.
func planCV(edit func(*cvv1.ContainerVersion)) *cvv1.ContainerVersion {
	cv := &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/web", WriteBack: &cvv1.WriteBackSpec{URL: "https://git.example.com/a.git",
			Targets: []cvv1.WriteBackTarget{{Path: "k.yaml", Kind: cvv1.TargetKustomize}}}},
		Status: cvv1.ContainerVersionStatus{CurrStatus: cvv1.StatusSuccess, SuccessVersion: "v2", SuccessDigest: digest(2), Signer: "key x",
			Provenance: &cvv1.Provenance{Revision: "abc"}},
	}
	if edit != nil {
		edit(cv)
	}
	return cv
}

func wbStatus(state string, version string, d string, ago time.Duration, attempts int32) *cvv1.WriteBackStatus {
	t := metav1.NewTime(planNow.Add(-ago))
	return &cvv1.WriteBackStatus{State: state, RolloutID: "r2", Version: version, Digest: d, Attempts: attempts, Time: &t}
}

func TestDue(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(*cvv1.ContainerVersion)
		wantDue  bool
		wantWait time.Duration
	}{
		{"no writeBack spec", func(cv *cvv1.ContainerVersion) { cv.Spec.WriteBack = nil }, false, 0},
		{"nothing deployed yet", func(cv *cvv1.ContainerVersion) { cv.Status.SuccessDigest = "" }, false, 0},
		{"rollout in progress", func(cv *cvv1.ContainerVersion) { cv.Status.Rollout = &cvv1.RolloutStatus{} }, false, 0},
		{"suspended", func(cv *cvv1.ContainerVersion) { cv.Spec.Suspend = true }, false, 0},
		{"never written", nil, true, 0},
		{"new version passed", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackWritten, "v1", digest(1), time.Hour, 0)
		}, true, 0},
		{"written", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackWritten, "v2", digest(2), time.Hour, 0)
		}, false, 0},
		{"failed rollout after a write: successDigest unchanged, nothing to write", func(cv *cvv1.ContainerVersion) {
			cv.Status.CurrStatus, cv.Status.CurrDigest, cv.Status.FailedDigest = cvv1.StatusFailed, digest(3), digest(3)
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackWritten, "v2", digest(2), time.Hour, 0)
		}, false, 0},
		{"failed write, backoff not over", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackFailed, "v2", digest(2), 5*time.Second, 2)
		}, false, 15 * time.Second},
		{"failed write, backoff over", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackFailed, "v2", digest(2), 21*time.Second, 2)
		}, true, 0},
		{"pending, recent", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackPending, "v2", digest(2), time.Minute, 0)
		}, false, 4 * time.Minute},
		{"pending, lost by a restart", func(cv *cvv1.ContainerVersion) {
			cv.Status.WriteBack = wbStatus(cvv1.WriteBackPending, "v2", digest(2), 6*time.Minute, 0)
		}, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			due, wait := Due(planCV(tc.edit), planNow, 0)
			if due != tc.wantDue || wait != tc.wantWait {
				t.Errorf("Due = %v, %v; want %v, %v", due, wait, tc.wantDue, tc.wantWait)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	cv := planCV(nil)
	got := NewRequest(cv, "r2", Credentials{Token: "t"})
	want := Request{Key: "prod/web", RolloutID: "r2", ImageRepo: "reg/web", Version: "v2", Digest: digest(2), Signer: "key x",
		Provenance: cvv1.Provenance{Revision: "abc"}, Spec: *cv.Spec.WriteBack, Credentials: Credentials{Token: "t"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A resubmission reuses the recorded ID and carries the attempts.
	cv.Status.WriteBack = wbStatus(cvv1.WriteBackFailed, "v2", digest(2), time.Minute, 3)
	if got := NewRequest(cv, "", Credentials{}); got.RolloutID != "r2" || got.Attempts != 3 {
		t.Errorf("resubmission: ID %q attempts %d, want r2 and 3", got.RolloutID, got.Attempts)
	}
	// Without any ID, one is derived from the CV and the image, stable.
	cv.Status.WriteBack = nil
	a, b := NewRequest(cv, "", Credentials{}), NewRequest(cv, "", Credentials{})
	if a.RolloutID == "" || a.RolloutID != b.RolloutID {
		t.Errorf("derived IDs %q, %q", a.RolloutID, b.RolloutID)
	}
}
