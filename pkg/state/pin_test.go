package state_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/state"
)

func TestPin(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	mt := metav1.NewTime(now)
	good := state.CVState{Namespace: "shop", Name: "web", SuccessVersion: "v7", SuccessDigest: "sha256:aaa",
		CurrVersion: "v8", CurrDigest: "sha256:bbb", CurrStatus: cvv1.StatusFailed}
	suspended := good
	suspended.Spec.Suspend = true
	tests := []struct {
		name string
		in   state.CVState
		want cvv1.ContainerVersionStatus
	}{
		{
			name: "last-known-good is rolled out first, whatever failed after it",
			in:   good,
			want: cvv1.ContainerVersionStatus{
				CurrVersion: "v7", CurrDigest: "sha256:aaa", CurrStatus: cvv1.StatusProgressing, CurrStatusTime: &mt,
				SuccessVersion: "v7", SuccessDigest: "sha256:aaa",
				Rollout: &cvv1.RolloutStatus{Version: "v7", Digest: "sha256:aaa", Trigger: history.TriggerImport, StartTime: mt},
				Conditions: []metav1.Condition{{Type: cvv1.ConditionProgressing, Status: metav1.ConditionTrue,
					Reason: state.ReasonImported, LastTransitionTime: mt,
					Message: "restoring the last-known-good version v7 (sha256:aaa) from an exported state"}},
			},
		},
		{
			name: "a suspended CV only remembers its last-known-good",
			in:   suspended,
			want: cvv1.ContainerVersionStatus{SuccessVersion: "v7", SuccessDigest: "sha256:aaa"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, state.Pin(tt.in, now)); diff != "" {
				t.Errorf("Pin (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPinned(t *testing.T) {
	tests := []struct {
		name string
		in   state.CVState
		want bool
	}{
		{"never succeeded", state.CVState{CurrDigest: "sha256:bbb", CurrStatus: cvv1.StatusFailed}, false},
		{"succeeded once", state.CVState{SuccessVersion: "v1", SuccessDigest: "sha256:aaa"}, true},
	}
	for _, tt := range tests {
		if got := tt.in.Pinned(); got != tt.want {
			t.Errorf("%s: Pinned = %v, want %v", tt.name, got, tt.want)
		}
	}
}
