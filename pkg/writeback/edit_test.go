package writeback

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testImage = Image{
	Repo:    "registry.example.com/team/web",
	Version: "2222222",
	Digest:  "sha256:" + strings.Repeat("ab", 32),
}

// TestEditTargetsGolden edits each kind of target and compares the whole
// file with a golden copy: only the targeted values (and added fields)
// differ from the input, comments and formatting stay.
func TestEditTargetsGolden(t *testing.T) {
	cases := []struct {
		name   string
		target cvv1.WriteBackTarget
	}{
		{"kustomize-entry", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}},
		{"kustomize-add-field", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize, ImageName: "registry.example.com/team/worker"}},
		{"kustomize-no-images", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}},
		{"kustomize-new-entry", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}},
		{"kustomize-newname", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize, ImageName: "web"}},
		{"kustomize-wide-entry", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}},
		{"helm-values", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag", Digest: "image.digest"}}},
		{"manifest", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Image: "spec.template.spec.containers[name=app].image"}}},
		{"setter", cvv1.WriteBackTarget{Kind: cvv1.TargetSetter}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata/edit", tc.name+".in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := EditTarget(in, tc.target, testImage, "prod:web")
			if err != nil {
				t.Fatalf("EditTarget: %v", err)
			}
			golden := filepath.Join("testdata/edit", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("edited file differs from %s (-want +got):\n%s", golden, diff)
			}
			// Editing again changes nothing: the write is idempotent.
			again, err := EditTarget(got, tc.target, testImage, "prod:web")
			if err != nil {
				t.Fatalf("second EditTarget: %v", err)
			}
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("a second edit changed the file (-first +second):\n%s", diff)
			}
		})
	}
}

// TestEditTargetErrors: a target that cannot be edited says where and why.
func TestEditTargetErrors(t *testing.T) {
	cases := []struct {
		name, src string
		target    cvv1.WriteBackTarget
		want      string
	}{
		{"missing path", "image:\n  repo: x\n", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "spec.image.tag"}}, `path "spec.image.tag": spec not found`},
		{"block scalar", "image:\n  tag: |\n    v1\n", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag"}}, "block scalars"},
		{"not a scalar", "image:\n  tag:\n    a: b\n", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag"}}, "expected a scalar value, found a mapping"},
		{"no marker", "image: x # {\"$cvmanager\": \"other:app\"}\n", cvv1.WriteBackTarget{Kind: cvv1.TargetSetter}, `no marker for setter "prod:web"`},
		{"bad yaml", "a: [\n", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}, "parse YAML"},
		{"flow images", "images: [{name: a, newTag: b}]\n", cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}, "flow style"},
		{"index out of range", "c:\n- a: 1\n", cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Image: "c[3].a"}}, "index out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EditTarget([]byte(tc.src), tc.target, testImage, "prod:web")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestPlainOrQuoted: values that would not read back as strings are quoted.
func TestPlainOrQuoted(t *testing.T) {
	for in, want := range map[string]string{
		"abc1234":        "abc1234",
		"1234567":        `"1234567"`,
		"1.10":           `"1.10"`,
		"true":           `"true"`,
		"sha256:abcd":    "sha256:abcd",
		"":               `""`,
		"a: b":           `"a: b"`,
		"reg.io/app:1.0": "reg.io/app:1.0",
	} {
		if got := plainOrQuoted(in); got != want {
			t.Errorf("plainOrQuoted(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestKustomizeRendersTheDeployedImage: kustomize itself renders a
// kustomization the writer edited to exactly the reference the controller
// writes into workloads (repo:version@digest), so a GitOps tool applying
// the commit leaves the drift detector nothing to correct.
func TestKustomizeRendersTheDeployedImage(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.example.com/team/web:bootstrap
`
	kustom := "resources:\n- deployment.yaml\nimages:\n- name: registry.example.com/team/web\n  newTag: old # pinned by cvmanager\n"
	for _, img := range []Image{testImage, {Repo: testImage.Repo, Digest: testImage.Digest}} {
		edited, err := EditTarget([]byte(kustom), cvv1.WriteBackTarget{Kind: cvv1.TargetKustomize}, img, "prod:web")
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/app/deployment.yaml", []byte(deployment)); err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/app/kustomization.yaml", edited); err != nil {
			t.Fatal(err)
		}
		res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/app")
		if err != nil {
			t.Fatalf("kustomize build: %v", err)
		}
		out, err := res.AsYaml()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := workload.PinnedImage(img.Repo, img.Version, img.Digest)
		if !strings.Contains(string(out), "image: "+want+"\n") {
			t.Errorf("kustomize renders\n%s\nwant image %s (the controller's pinned reference)", out, want)
		}
	}
}

// TestEditKeepsCRLF: a file with CRLF line ends keeps them, added lines
// included, and plain values with commas or colons are replaced whole.
func TestEditKeepsCRLF(t *testing.T) {
	src := "image:\r\n  repository: reg/web\r\n  tag: a,b:c # note\r\n"
	got, err := EditTarget([]byte(src), cvv1.WriteBackTarget{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag", Digest: "image.digest"}}, testImage, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "image:\r\n  repository: reg/web\r\n  tag: \"2222222\" # note\r\n  digest: " + testImage.Digest + "\r\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
