package cli

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func TestKubernetesVersionFloor(t *testing.T) {
	cases := []struct {
		major, minor, git string
		wantErr           string
	}{
		{"1", "29", "v1.29.9", "the API server runs Kubernetes v1.29.9; cvmanager needs 1.30 or newer"},
		{"1", "27+", "v1.27.3-eks-1", "runs Kubernetes v1.27.3-eks-1"},
		{"1", "30", "v1.30.0", ""},
		{"1", "34+", "v1.34.4-gke.1", ""},
		{"2", "0", "v2.0.0", ""},
	}
	for _, tc := range cases {
		d := fake.NewClientset().Discovery().(*fakediscovery.FakeDiscovery)
		d.FakedServerVersion = &version.Info{Major: tc.major, Minor: tc.minor, GitVersion: tc.git}
		err := checkKubernetesVersion(context.Background(), d)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.git, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.git, err, tc.wantErr)
		}
	}
}
