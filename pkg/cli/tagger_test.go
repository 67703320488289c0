package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/test/ecrapi"
	"cvmanager.dev/cvmanager/test/localregistry"
	"cvmanager.dev/cvmanager/test/registrytest"
)

// TestTaggerAgainstARealRegistry uses the tagger as CI would, against an
// in-process CNCF Distribution registry.
func TestTaggerAgainstARealRegistry(t *testing.T) {
	reg, err := localregistry.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	repo := reg.Repo("team/app")
	digest, err := reg.Push("team/app", "3f2a9c1")
	if err != nil {
		t.Fatal(err)
	}
	// No cluster to list the CVs following the tags: say so, tag anyway.
	t.Setenv("KUBECONFIG", writeKubeconfig(t, "https://127.0.0.1:1"))
	out, err := execute("cr", "tags", "add", "--repo", repo, "--insecure", "--tags", "env-prod,env-stage", "--version", "3f2a9c1", "--version-pattern", "[0-9a-f]{7}")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	if !strings.Contains(out, "warning: signature policies not checked") {
		t.Errorf("add without a cluster should warn that no policy was checked:\n%s", out)
	}
	out, err = execute("cr", "tags", "get", "--repo", repo, "--insecure", "--version", "3f2a9c1", "-o", "json")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	var got struct {
		Digest string   `json:"digest"`
		Tags   []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if got.Digest != digest || strings.Join(got.Tags, ",") != "3f2a9c1,env-prod,env-stage" {
		t.Errorf("after add: %+v", got)
	}
	if reg.Count("GET", "blobs") != 0 {
		t.Errorf("retag pulled %d blobs; it must only move the manifest", reg.Count("GET", "blobs"))
	}
}

func TestTaggerErrorsAsANewUserSeesThem(t *testing.T) {
	reg, err := localregistry.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	repo := reg.Repo("team/app")
	if _, err := reg.Push("team/app", "abc1234"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		message string
	}{
		{"help", []string{"cr", "tags", "add", "--help"}, ""},
		{"missing version", []string{"cr", "tags", "add", "--repo", repo, "--tags", "x"}, `required flag(s) "version" not set`},
		{"repo with a tag", []string{"cr", "tags", "get", "--repo", repo + ":v1", "--version", "abc1234", "--insecure"}, "must be a repository without tag or digest"},
		{"unknown version", []string{"cr", "tags", "get", "--repo", repo, "--version", "nope", "--insecure"}, repo + ":nope"},
		{"pattern mismatch", []string{"cr", "tags", "add", "--repo", repo, "--tags", "x", "--version", "abc1234", "--version-pattern", "[0-9a-f]{40}"}, `does not match --version-pattern`},
		{"unreachable registry", []string{"cr", "tags", "get", "--repo", "127.0.0.1:1/team/app", "--version", "v1", "--insecure"}, "127.0.0.1:1/team/app:v1"},
		{"unknown provider", []string{"cr", "tags", "get", "--repo", repo, "--version", "abc1234", "--insecure", "--provider", "oracle"}, `--provider: unknown provider "oracle"`},
		{"provider aws on a v2 registry", []string{"cr", "tags", "get", "--repo", repo, "--version", "abc1234", "--insecure", "--provider", "AWS"}, "is not an ECR repository"},
		{"remove on a v2 registry", []string{"cr", "tags", "remove", "--repo", repo, "--tags", "env-prod", "--insecure"}, "not supported by this registry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(tc.args...)
			if tc.message == "" {
				if err != nil || !strings.Contains(out, "--tags") || !strings.Contains(out, "--version-pattern") {
					t.Errorf("help: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %v does not mention %q", err, tc.message)
			}
		})
	}
}

// startECRStandIn runs test/ecrapi (ECR's JSON 1.1 API, backed by an
// in-process registry). Live ECR cannot be reached from the machines tests
// run on.
func startECRStandIn(t *testing.T) (*localregistry.Registry, *ecrapi.Server) {
	return ecrapi.StartForTest(t, nil)
}

// TestTaggerOnECR: add, get and remove through the ECR API; get is one
// DescribeImages call instead of a HEAD per tag.
func TestTaggerOnECR(t *testing.T) {
	reg, api := startECRStandIn(t)
	const repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"
	digest, err := reg.Push("team/app", "3f2a9c1")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := execute(append(append([]string{"cr", "tags"}, args...), "--repo", repo, "--ecr-endpoint", api.URL)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	run("add", "--tags", "env-prod,env-stage", "--version", "3f2a9c1")
	before := api.Calls("")
	var got struct {
		Digest string   `json:"digest"`
		Tags   []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(run("get", "--version", "env-prod", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Digest != digest || strings.Join(got.Tags, ",") != "3f2a9c1,env-prod,env-stage" {
		t.Errorf("get after add: %+v", got)
	}
	if n := api.Calls("") - before; n != 1 {
		t.Errorf("get made %d API calls, want 1", n)
	}
	if out := run("remove", "--tags", "env-stage"); !strings.Contains(out, "removed env-stage from "+repo) {
		t.Errorf("remove said %q", out)
	}
	if out := run("get", "--version", "3f2a9c1"); strings.Contains(out, "env-stage") || !strings.Contains(out, "env-prod") {
		t.Errorf("after remove: %s", out)
	}
	_, err = execute("cr", "tags", "add", "--repo", repo, "--ecr-endpoint", api.URL, "--version", "nope", "--tags", "x")
	if err == nil || !strings.Contains(err.Error(), repo+":nope") {
		t.Errorf("unknown version on ECR: %v", err)
	}
}

// TestTaggerRemovesOnDockerHub uses a local stand-in for Hub's login and
// delete-tag calls (Docker Hub cannot be reached from here).
func TestTaggerRemovesOnDockerHub(t *testing.T) {
	hub := registrytest.StartHubAPI("ci", "pat-123", "team/app:env-prod")
	defer hub.Close()
	out, err := execute("cr", "tags", "remove", "--repo", "docker.io/team/app", "--tags", "env-prod", "--username", "ci", "--password", "pat-123", "--docker-hub-api", hub.URL, "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if hub.Has("team/app:env-prod") || !strings.Contains(out, `"removed":["env-prod"]`) {
		t.Errorf("tag still there or output wrong: %s", out)
	}
	_, err = execute("cr", "tags", "remove", "--repo", "team/app", "--tags", "env-prod", "--username", "ci", "--password", "bad", "--docker-hub-api", hub.URL)
	if err == nil || !strings.Contains(err.Error(), "team/app") || !strings.Contains(err.Error(), "login") {
		t.Errorf("bad password: %v", err)
	}
}

// TestTaggerAuthenticates: a token-auth registry with --username/--password,
// and an htpasswd registry with credentials from --docker-config.
func TestTaggerAuthenticates(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "") // the command sets it from --docker-config
	tokenReg, err := localregistry.Start("127.0.0.1:0", localregistry.WithTokenAuth("ci", "s3cret", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer tokenReg.Close()
	if _, err := tokenReg.Push("team/app", "abc1234"); err != nil {
		t.Fatal(err)
	}
	if out, err := execute("cr", "tags", "add", "--repo", tokenReg.Repo("team/app"), "--insecure", "--version", "abc1234", "--tags", "env-prod", "--username", "ci", "--password", "s3cret"); err != nil {
		t.Errorf("token auth: %v\n%s", err, out)
	}
	if _, err := execute("cr", "tags", "get", "--repo", tokenReg.Repo("team/app"), "--insecure", "--version", "abc1234"); err == nil {
		t.Error("anonymous get on a token-auth registry succeeded")
	}
	basicReg, err := localregistry.Start("127.0.0.1:0", localregistry.WithHtpasswd("ci", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer basicReg.Close()
	if _, err := basicReg.Push("team/app", "abc1234"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, basicReg.Host, base64.StdEncoding.EncodeToString([]byte("ci:s3cret")))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := execute("cr", "tags", "get", "--repo", basicReg.Repo("team/app"), "--insecure", "--version", "abc1234", "--docker-config", dir)
	if err != nil || !strings.Contains(out, "abc1234") {
		t.Errorf("docker config: %v\n%s", err, out)
	}
}

// writeKubeconfig writes a kubeconfig for server and returns its path.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
`, server)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
