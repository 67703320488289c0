package writeback

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// FuzzEditTarget: on any input, EditTarget does not panic, and what it
// returns still parses and is a fixed point (editing again changes
// nothing), for each kind of target.
func FuzzEditTarget(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/edit/*.in.yaml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("image: {tag: 'x', digest: \"y\"}\n"))
	f.Add([]byte("- a\n- b: # {\"$cvmanager\": \"prod:web:tag\"}\n"))
	targets := []cvv1.WriteBackTarget{
		{Kind: cvv1.TargetKustomize},
		{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag", Digest: "image.digest"}},
		{Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Image: "spec.template.spec.containers[name=app].image"}},
		{Kind: cvv1.TargetSetter},
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v on\n%q", d, src)
			}
		}()
		for _, tg := range targets {
			out, err := EditTarget(src, tg, testImage, "prod:web")
			if err != nil {
				continue
			}
			if _, err := parseDocs(out); err != nil {
				t.Fatalf("%s: the edited file does not parse: %v\n--- in\n%s\n--- out\n%s", tg.Kind, err, src, out)
			}
			again, err := EditTarget(out, tg, testImage, "prod:web")
			if err != nil {
				t.Fatalf("%s: a second edit fails: %v\n--- out\n%s", tg.Kind, err, out)
			}
			if string(again) != string(out) {
				t.Fatalf("%s: a second edit changes the file\n--- out\n%s\n--- again\n%s", tg.Kind, out, again)
			}
		}
	})
}
