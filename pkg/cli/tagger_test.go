package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/test/localregistry"
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
	if out, err := execute("cr", "tags", "add", "--repo", repo, "--insecure", "--tags", "env-prod,env-stage", "--version", "3f2a9c1", "--version-pattern", "[0-9a-f]{7}"); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	out, err := execute("cr", "tags", "get", "--repo", repo, "--insecure", "--version", "3f2a9c1", "-o", "json")
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
