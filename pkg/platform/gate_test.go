package platform

import (
	"errors"
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

func TestGate(t *testing.T) {
	nodes := []Platform{amd64}
	tests := []struct {
		name             string
		idx              Index
		known            bool
		nodes            []Platform
		allowed, pending bool
		reason           string
	}{
		{"arm64-only index, amd64 nodes", Index{IsIndex: true, Platforms: []Platform{arm64}}, true, nodes, false, false, cvv1.ReasonPlatformMissing},
		{"two-platform index", Index{IsIndex: true, Platforms: []Platform{amd64, arm64}}, true, nodes, true, false, ""},
		{"plain image", Index{}, true, nodes, true, false, ""},
		{"not read yet", Index{}, false, nodes, false, true, ""},
		{"read failed", Index{Err: errors.New("403")}, true, nodes, false, false, cvv1.ReasonPlatformMissing},
		{"no node platform known", Index{IsIndex: true, Platforms: []Platform{arm64}}, true, nil, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Gate(tt.idx, tt.known, tt.nodes)
			if v.Allowed != tt.allowed || v.Pending != tt.pending || v.Reason != tt.reason {
				t.Errorf("Gate = %+v", v)
			}
			if !v.Allowed && v.Message == "" {
				t.Error("no message")
			}
		})
	}
}
