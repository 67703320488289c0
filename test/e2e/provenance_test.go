package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// provenanceGets counts the requests reading provenance can make: manifest
// and blob GETs (polls only HEAD the tag and list tags).
func provenanceGets(reg *e2eenv.Registry) map[string]int64 {
	return map[string]int64{"GET manifests": reg.Count("GET", "manifests"), "GET blobs": reg.Count("GET", "blobs")}
}

func gotSince(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// TestProvenanceOfNewDigests: a rollout of a new digest fills
// status.provenance and the history record from the image's annotations
// and labels, for one manifest GET and one config GET per new digest; polls
// without a change cost no GET at all; an image without provenance shows
// none.
func TestProvenanceOfNewDigests(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	resolver, reader := reg.ResolverAndReader(t)
	e.StartController(resolver, func(o *controller.Options) { o.Provenance = provenance.NewCache(reader) })
	repo := reg.Repo("team/web")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	push := func(version, revision string) (string, map[string]int64) {
		t.Helper()
		labels := map[string]string{provenance.RevisionKey: "label-loses", provenance.SourceKey: "https://git.example/team/web",
			provenance.AuthorsKey: "Team Web <web@example.com>", provenance.CIURLKey: "https://ci.example/runs/" + version}
		annotations := map[string]string{provenance.RevisionKey: revision}
		digest, err := reg.PushAnnotated("team/web", annotations, labels, "2026-11-01T10:00:00Z", version)
		e2eenv.Must(t, err)
		_, err = reg.MoveTag("team/web", "env-prod", version) // one GET of the test's own
		e2eenv.Must(t, err)
		return digest, provenanceGets(reg)
	}
	want := func(version, revision string) *cvv1.Provenance {
		return &cvv1.Provenance{Revision: revision, Source: "https://git.example/team/web", Created: "2026-11-01T10:00:00Z",
			Authors: "Team Web <web@example.com>", CILink: "https://ci.example/runs/" + version}
	}

	d1, before := push("v1", "1111111111111111111111111111111111111111")
	e.CreateCV(gen.NewCV(e.NS, "web", repo))
	e.WaitStatus("web", cvv1.StatusSuccess, d1, 60*time.Second)
	waitProvenance(e, "web", want("v1", "1111111111111111111111111111111111111111"))
	if records := e.History("web"); len(records) == 0 || records[0].ToDigest != d1 {
		t.Fatalf("history: %+v", records)
	} else if diff := cmp.Diff(want("v1", "1111111111111111111111111111111111111111"), records[0].Provenance); diff != "" {
		t.Errorf("history record provenance (-want +got):\n%s", diff)
	}
	perDigest := map[string]int64{"GET manifests": 1, "GET blobs": 1}
	if diff := cmp.Diff(perDigest, gotSince(before, provenanceGets(reg))); diff != "" {
		t.Errorf("requests for the first digest (-want +got):\n%s", diff)
	}

	// Steady state: polls (5 s interval) see no change and GET nothing;
	// three polls seen at the registry, so the first two ran to their end.
	steady := provenanceGets(reg)
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 3, 30*time.Second)
	if diff := cmp.Diff(map[string]int64{"GET manifests": 0, "GET blobs": 0}, gotSince(steady, provenanceGets(reg))); diff != "" {
		t.Errorf("steady-state requests (-want +got):\n%s", diff)
	}

	d2, before := push("v2", "2222222222222222222222222222222222222222")
	e.WaitStatus("web", cvv1.StatusSuccess, d2, 60*time.Second)
	waitProvenance(e, "web", want("v2", "2222222222222222222222222222222222222222"))
	if diff := cmp.Diff(perDigest, gotSince(before, provenanceGets(reg))); diff != "" {
		t.Errorf("requests for the second digest (-want +got):\n%s", diff)
	}

	// An image without provenance: the view shows none, and nothing of v2
	// is left behind.
	d3 := reg.MustPush(t, "team/web", "v3")
	_, err = reg.MoveTag("team/web", "env-prod", "v3")
	e2eenv.Must(t, err)
	cv := e.WaitStatus("web", cvv1.StatusSuccess, d3, 60*time.Second)
	// Two more polls of the tag: a late fill from the rollout's read
	// would have landed by the end of the first.
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 2, 30*time.Second)
	if cv = e.GetCV("web"); cv.Status.Provenance != nil {
		t.Errorf("an image without provenance shows %+v", cv.Status.Provenance)
	}
}

// waitProvenance waits for status.provenance to equal want: it is filled
// in when read, which may be just after the rollout finished.
func waitProvenance(e *e2eenv.Env, name string, want *cvv1.Provenance) {
	e.T.Helper()
	e.Eventually(10*time.Second, "status.provenance of "+name, func() (bool, error) {
		got := e.GetCV(name).Status.Provenance
		diff := cmp.Diff(want, got)
		return diff == "", fmt.Errorf("(-want +got):\n%s", diff)
	})
}
