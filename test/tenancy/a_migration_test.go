package tenancy

// This file sorts first: its CV must be created before the author policy
// is installed, as a CV of a cluster upgraded to this version was.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestCVsFromBeforeTheUpgradeKeepWorking: a CV created before the author
// policy existed has no author. By default it is refused with a message
// that says how to fix it; --trust-unattributed-created-before (the
// upgrade time) lets it roll out as before; the documented one-time
// annotation (an admin stamps it with their own identity, which the
// policy accepts) makes it an ordinary CV, checked like any other.
func TestCVsFromBeforeTheUpgradeKeepWorking(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/legacy")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "legacy", "legacy", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	legacy := gen.NewCV(e.NS, "legacy", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Container.Verify = []cvv1.VerifySpec{{Image: "verifier:ok"}}
	})
	created, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, legacy, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a CV without author (is the author policy already installed? this test must run first): %v", err)
	}
	upgrade := created.CreationTimestamp.Add(time.Second).UTC().Format(time.RFC3339)
	installAuthorPolicy(e)
	controllerCfg := installChart(e, modes[0])
	d1 := reg.MustPush(t, "team/legacy", "v1", "env-prod")

	// Upgraded without the grace setting: refused, with the way out.
	strict := startController(e, controllerCfg, reg)
	waitRefused(e, "legacy", "records no author", "cvmanager cv stamp")
	if gen := e.DeploymentGeneration("legacy"); gen != 1 {
		t.Errorf("a refused CV changed its Deployment (generation %d)", gen)
	}
	strict.stop()

	// The grace setting: the CV rolls out as before, and says why.
	grace := startController(e, controllerCfg, reg, "--trust-unattributed-created-before", upgrade)
	cv := e.WaitStatus("legacy", cvv1.StatusSuccess, d1, 60*time.Second)
	if !e2eenv.ConditionIs(cv, "Authorized", "Grandfathered") {
		t.Errorf("a grandfathered rollout's Authorized condition: %+v", cv.Status.Conditions)
	}
	grace.stop()

	// The one-time annotation: an admin vouches for it; from then on it is
	// checked like any CV (the admin may do everything).
	id, err := authz.WhoAmI(e.Ctx, e.Kube)
	e2eenv.Must(t, err)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`, authz.AnnotationAuthor, id.User,
		authz.AnnotationGroups, strings.Join(id.Groups, ","))
	_, err = e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Patch(e.Ctx, "legacy", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	startController(e, controllerCfg, reg)
	d2 := reg.MustPush(t, "team/legacy", "v2", "env-prod")
	cv = e.WaitStatus("legacy", cvv1.StatusSuccess, d2, 60*time.Second)
	if !e2eenv.ConditionIs(cv, "Authorized", "Authorized") {
		t.Errorf("after the one-time annotation: %+v", cv.Status.Conditions)
	}
	if got, want := e.DeploymentImage("legacy"), gen.Pinned(repo, "v2", d2); got != want {
		t.Errorf("Deployment runs %s, want %s", got, want)
	}
}
