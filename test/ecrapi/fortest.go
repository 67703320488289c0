package ecrapi

import (
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/test/localregistry"
)

// backendPassword is the password of ECR's token user ("AWS") on the
// backend registry; GetAuthorizationToken hands it out.
const backendPassword = "ecr-password"

// StartForTest runs a registry that accepts only ECR's token user and this
// endpoint in front of it, both closed with t, after pointing the AWS SDK's
// default credential chain at static test credentials. clk may be nil (the
// real clock); a fake clock lets token-expiry tests move time.
func StartForTest(t testing.TB, clk clock.Clock) (*localregistry.Registry, *Server) {
	t.Helper()
	SetAWSEnvironment(t)
	reg := localregistry.StartForTest(t, localregistry.WithHtpasswd("AWS", backendPassword))
	api, err := Start(Options{Backend: reg.Host, BackendAuth: &authn.Basic{Username: "AWS", Password: backendPassword},
		TokenPassword: backendPassword, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	return reg, api
}

// SetAWSEnvironment gives the SDK's default chain static test credentials
// (its first link) and keeps it away from the user's files and the
// instance metadata service.
func SetAWSEnvironment(t testing.TB) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDCVMANAGERTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}
