package writeback

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// TestParseDefaults: a namespace's defaults are checked as admission
// checks spec.writeBack, and a typo is an error naming the field.
func TestParseDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, value, wantErr string
		want                 Defaults
	}{
		{name: "https with a token", value: "url: https://git.example/team/deploy.git\nbranch: prod\nsecretRef: {name: deploy, tokenKey: token}\n",
			want: Defaults{URL: "https://git.example/team/deploy.git", Branch: "prod", SecretRef: &cvv1.GitSecretRef{Name: "deploy", TokenKey: "token"}}},
		{name: "ssh with key and known_hosts", value: "url: git@git.example:team/deploy.git\nsecretRef: {name: d, identityKey: id, knownHostsKey: kh}\n",
			want: Defaults{URL: "git@git.example:team/deploy.git", SecretRef: &cvv1.GitSecretRef{Name: "d", IdentityKey: "id", KnownHostsKey: "kh"}}},
		{name: "typo", value: "url: https://git.example/d.git\nbrnach: main\n", wantErr: `unknown field "brnach"`},
		{name: "no url", value: "branch: main\n", wantErr: "url is required"},
		{name: "credentials in the url", value: "url: https://ci:s3cr3t@git.example/d.git\n", wantErr: "must not embed credentials"},
		{name: "not a url", value: "url: /srv/deploy.git\n", wantErr: "repository URL"},
		{name: "bad branch", value: "url: https://git.example/d.git\nbranch: a..b\n", wantErr: "valid git branch name"},
		{name: "ssh without known_hosts", value: "url: ssh://git@git.example/d.git\nsecretRef: {name: d, identityKey: id}\n", wantErr: "knownHostsKey"},
		{name: "password without user", value: "url: https://git.example/d.git\nsecretRef: {name: d, passwordKey: p}\n", wantErr: "usernameKey"},
		{name: "secretRef without a name", value: "url: https://git.example/d.git\nsecretRef: {tokenKey: t}\n", wantErr: "secretRef.name is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDefaults(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "cvmanager-defaults key writeBack") {
					t.Fatalf("error %v, want one naming the ConfigMap key and %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("the error repeats a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEffective: a CV that names no repository takes the namespace's,
// with its branch and credentials unless it sets its own; a CV that names
// its own repository takes nothing, so the namespace's credentials never
// go to another host.
func TestEffective(t *testing.T) {
	targets := []cvv1.WriteBackTarget{{Path: "web/kustomization.yaml", Kind: cvv1.TargetKustomize}}
	defaults := &Defaults{URL: "https://git.example/team/deploy.git", Branch: "prod", SecretRef: &cvv1.GitSecretRef{Name: "deploy", TokenKey: "token"}}
	for _, tc := range []struct {
		name     string
		spec     cvv1.WriteBackSpec
		defaults *Defaults
		want     cvv1.WriteBackSpec
		wantErr  string
	}{
		{name: "targets only: the namespace's repository", spec: cvv1.WriteBackSpec{Targets: targets}, defaults: defaults,
			want: cvv1.WriteBackSpec{URL: defaults.URL, Branch: "prod", SecretRef: defaults.SecretRef, Targets: targets}},
		{name: "own branch and Secret win", defaults: defaults,
			spec: cvv1.WriteBackSpec{Branch: "main", SecretRef: &cvv1.GitSecretRef{Name: "mine", TokenKey: "t"}, Targets: targets},
			want: cvv1.WriteBackSpec{URL: defaults.URL, Branch: "main", SecretRef: &cvv1.GitSecretRef{Name: "mine", TokenKey: "t"}, Targets: targets}},
		{name: "own repository: nothing inherited", defaults: defaults,
			spec: cvv1.WriteBackSpec{URL: "https://elsewhere.example/x.git", Targets: targets},
			want: cvv1.WriteBackSpec{URL: "https://elsewhere.example/x.git", Targets: targets}},
		{name: "no repository anywhere", spec: cvv1.WriteBackSpec{Targets: targets}, wantErr: "no ConfigMap cvmanager-defaults"},
		{name: "own ssh keys for an https default", defaults: defaults,
			spec:    cvv1.WriteBackSpec{SecretRef: &cvv1.GitSecretRef{Name: "k", IdentityKey: "id", KnownHostsKey: "kh"}, Targets: targets},
			wantErr: "an https repository takes token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Effective(tc.spec, tc.defaults)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
