package cli

import (
	"strings"
	"testing"
)

func TestCheckProvider(t *testing.T) {
	const ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"
	cases := []struct {
		provider, repo, wantErr string
	}{
		{"", "nginx", ""},
		{"", ecr, ""},
		{"ecr", ecr, ""},
		{"dockerhub", "nginx", ""},
		{"dockerhub", "docker.io/team/app", ""},
		{"dockerhub", "127.0.0.1:5000/team/app", ""},
		{"ecr", "docker.io/team/app", "--provider ecr does not match spec.imageRepo \"docker.io/team/app\": its host index.docker.io is not an ECR registry"},
		{"ecr", "ghcr.io/team/app", "its host ghcr.io is not an ECR registry"},
		{"dockerhub", ecr, "--provider dockerhub does not match spec.imageRepo \"" + ecr + "\": its host 123456789012.dkr.ecr.eu-west-1.amazonaws.com is an ECR registry"},
	}
	for _, c := range cases {
		err := checkProvider(c.provider, c.repo)
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("checkProvider(%q, %q) = %v, want %q", c.provider, c.repo, err, c.wantErr)
		}
	}
	if err := validProvider("gcr"); err == nil || !strings.Contains(err.Error(), "use ecr or dockerhub") {
		t.Errorf("validProvider(gcr) = %v", err)
	}
}
