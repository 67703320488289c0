package registry

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRepositoryUsesARealReferenceParser(t *testing.T) {
	cases := []struct {
		in, registry, repository, err string
	}{
		{in: "nginx", registry: "index.docker.io", repository: "library/nginx"},
		{in: "team/app", registry: "index.docker.io", repository: "team/app"},
		{in: "reg.example.com:5000/team/app", registry: "reg.example.com:5000", repository: "team/app"},
		{in: "127.0.0.1:5000/app", registry: "127.0.0.1:5000", repository: "app"},
		{in: "ghcr.io/team/sub/app", registry: "ghcr.io", repository: "team/sub/app"},
		{in: "reg.example.com:5000/team/app:v1", err: "without tag or digest"},
		{in: "nginx:latest", err: "without tag or digest"},
		{in: "team/app@sha256:" + strings.Repeat("a", 64), err: "without tag or digest"},
		{in: "Team/App", err: "invalid repository"},
		{in: "", err: "invalid repository"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRepository(tc.in, false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.RegistryStr() != tc.registry || r.RepositoryStr() != tc.repository {
				t.Errorf("got %s / %s, want %s / %s", r.RegistryStr(), r.RepositoryStr(), tc.registry, tc.repository)
			}
		})
	}
}

func TestKindOfRoutesHostsToTheirAPI(t *testing.T) {
	cases := map[string]Kind{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com":         KindECR,
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com":    KindECR,
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":     KindECR,
		"12345.dkr.ecr.eu-west-1.amazonaws.com":                KindOCI, // accounts have 12 digits
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.io": KindOCI,
		"index.docker.io":      KindDockerHub,
		"docker.io":            KindDockerHub,
		"registry-1.docker.io": KindDockerHub,
		"ghcr.io":              KindOCI,
		"127.0.0.1:5000":       KindOCI,
	}
	for host, want := range cases {
		if got := KindOf(host); got != want {
			t.Errorf("KindOf(%q) = %d, want %d", host, got, want)
		}
	}
}

func TestParseECR(t *testing.T) {
	got, err := ParseECR("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ECRLocation{Account: "123456789012", Region: "eu-west-1", Repository: "team/app"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	for _, bad := range []string{"ghcr.io/team/app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1"} {
		if _, err := ParseECR(bad); err == nil {
			t.Errorf("ParseECR(%q) accepted", bad)
		}
	}
}

func TestPickVersion(t *testing.T) {
	sha, err := CompileVersionSyntax("")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, tag string
		tags      []string
		syntax    *regexp.Regexp
		want      string
	}{
		{"watched tag is a version", "3f2a9c1", []string{"env-prod", "3f2a9c1"}, sha, "3f2a9c1"},
		{"one version among tags", "env-prod", []string{"env-prod", "3f2a9c1", "latest"}, sha, "3f2a9c1"},
		{"smallest of two, whatever the order", "env-prod", []string{"bbbbbbb", "aaaaaaa", "env-prod"}, sha, "aaaaaaa"},
		{"anchored: a prefix match is no match", "env-prod", []string{"3f2a9c1-dirty"}, sha, ""},
		{"no syntax, no version", "env-prod", []string{"3f2a9c1"}, nil, ""},
	}
	for _, tc := range cases {
		if got := PickVersion(tc.tag, tc.tags, tc.syntax); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := CompileVersionSyntax("v("); err == nil || !strings.Contains(err.Error(), "invalid versionSyntax") {
		t.Errorf("bad syntax: %v", err)
	}
}

func TestNextPageReadsEveryLinkStyle(t *testing.T) {
	current, _ := url.Parse("http://reg.example.com:5000/v2/team/app/tags/list?n=2")
	cases := []struct {
		name, link, want, err string
	}{
		{"none", "", "", ""},
		{"distribution", `</v2/team/app/tags/list?last=b&n=2>; rel="next"`, "http://reg.example.com:5000/v2/team/app/tags/list?last=b&n=2", ""},
		{"quay: no brackets, opaque token", `/v2/team/app/tags/list?n=2&next_page=abc; rel="next"`, "http://reg.example.com:5000/v2/team/app/tags/list?n=2&next_page=abc", ""},
		{"nexus: absolute, port dropped", `<http://reg.example.com/v2/team/app/tags/list?last=b>; rel="next"`, "http://reg.example.com:5000/v2/team/app/tags/list?last=b", ""},
		{"several links", `</x?a=1>; rel="prev", </v2/team/app/tags/list?last=c>; rel=next`, "http://reg.example.com:5000/v2/team/app/tags/list?last=c", ""},
		{"another host", `<https://evil.example.com/v2/x>; rel="next"`, "", "another host"},
		{"same page again", `</v2/team/app/tags/list?n=2>; rel="next"`, "", "just read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextPage(tc.link, current)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotStr := ""
			if got != nil {
				gotStr = got.String()
			}
			if gotStr != tc.want {
				t.Errorf("got %q, want %q", gotStr, tc.want)
			}
		})
	}
}
