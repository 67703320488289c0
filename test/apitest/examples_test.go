package apitest

import (
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// TestExamplesPassAdmission creates every example CV in deploy/examples on
// the real apiserver, so a documented example can never drift into one the
// schema or its CEL rules reject.
func TestExamplesPassAdmission(t *testing.T) {
	ctx, client, ns := setup(t)
	files, err := filepath.Glob(filepath.Join(kubetest.RepoRoot(), "deploy", "examples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var cv cvv1.ContainerVersion
			if err := yaml.UnmarshalStrict(data, &cv); err != nil {
				t.Fatalf("%s does not decode as a ContainerVersion: %v", f, err)
			}
			cv.Namespace = ns
			if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, &cv, metav1.CreateOptions{}); err != nil {
				t.Errorf("apiserver rejects %s: %v", filepath.Base(f), err)
			}
		})
	}
}
