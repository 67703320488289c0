package state_test

import (
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/state"
)

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
