package cli

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/pkg/authz"
)

func TestStampManifestsSetsTheAuthorOfContainerVersionsOnly(t *testing.T) {
	in := `apiVersion: cvmanager.dev/v1alpha1
kind: ContainerVersion
metadata:
  name: web
  annotations:
    cvmanager.dev/author: somebody-else
    keep: me
spec:
  tag: env-prod
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
`
	var out bytes.Buffer
	id := authz.Identity{User: "system:serviceaccount:team-a:ci", Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	if err := stampManifests(strings.NewReader(in), &out, id); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents out, want 2:\n%s", len(docs), out.String())
	}
	var cv struct {
		Metadata struct{ Annotations map[string]string }
	}
	if err := yaml.Unmarshal([]byte(docs[0]), &cv); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{authz.AnnotationAuthor: id.User, authz.AnnotationGroups: "system:serviceaccounts,system:authenticated", "keep": "me"}
	for k, v := range want {
		if cv.Metadata.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, cv.Metadata.Annotations[k], v)
		}
	}
	if strings.Contains(docs[1], "cvmanager.dev/author") {
		t.Errorf("a ConfigMap was stamped:\n%s", docs[1])
	}
}

func TestStampManifestsStampsTheItemsOfAList(t *testing.T) {
	in := `apiVersion: v1
kind: List
items:
- apiVersion: cvmanager.dev/v1alpha1
  kind: ContainerVersion
  metadata: {name: a, namespace: x}
- apiVersion: cvmanager.dev/v1alpha1
  kind: ContainerVersion
  metadata: {name: b, namespace: y}
`
	var out bytes.Buffer
	if err := stampManifests(strings.NewReader(in), &out, authz.Identity{User: "admin", Groups: []string{"system:masters"}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "cvmanager.dev/author-groups: system:masters"); got != 2 {
		t.Errorf("%d items stamped, want 2:\n%s", got, out.String())
	}
}
