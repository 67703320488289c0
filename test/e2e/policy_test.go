package e2e

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// waitHeld waits until the CV holds digest back with the given reason.
func waitHeld(e *e2eenv.Env, name, digest, reason string) *cvv1.ContainerVersion {
	e.T.Helper()
	var cv *cvv1.ContainerVersion
	e.Eventually(30*time.Second, "version held: "+reason, func() (bool, error) {
		cv = e.GetCV(name)
		return cv.Status.AvailableDigest == digest && e2eenv.ConditionIs(cv, cvv1.ConditionReleaseBlocked, reason), nil
	})
	return cv
}

// TestAllowedVersionsBlocksAndManualReleaseWaits: a version outside
// allowedVersions is never deployed; in Manual mode a version waits for
// `cvmanager release`; a controller restriction holds a version no CV can
// allow.
func TestAllowedVersionsBlocksAndManualReleaseWaits(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	restriction, err := policy.ParseRestriction(e.NS + "=^v[0-9]+(-beta)?$")
	e2eenv.Must(t, err)
	e.StartController(reg.Resolver(t), func(o *controller.Options) { o.Restrictions = []policy.Restriction{restriction} })

	// allowedVersions
	repo := reg.Repo("team/allowed")
	d1 := reg.MustPush(t, "team/allowed", "v1", "env-prod")
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "allowed", "allowed", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "allowed", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{AllowedVersions: "v[0-9]+"}
	}))
	e.WaitStatus("allowed", cvv1.StatusSuccess, d1, 60*time.Second)
	beta := reg.MustPush(t, "team/allowed", "v2-beta", "env-prod")
	waitHeld(e, "allowed", beta, "VersionNotAllowed")
	if got := e.DeploymentImage("allowed"); got != gen.Pinned(repo, "v1", d1) {
		t.Errorf("blocked version deployed: %s", got)
	}
	e.WaitEvents("allowed", map[string]int{controller.ReasonReleaseBlocked: 1})
	d3 := reg.MustPush(t, "team/allowed", "v3", "env-prod")
	e.WaitStatus("allowed", cvv1.StatusSuccess, d3, 60*time.Second)

	// Manual release mode, released with the CLI as a user would.
	repo = reg.Repo("team/manual")
	m1 := reg.MustPush(t, "team/manual", "v1", "env-prod")
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "manual", "manual", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "manual", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{ReleaseMode: "Manual"}
	}))
	cv := waitHeld(e, "manual", m1, "AwaitingRelease")
	if cv.Status.AvailableVersion != "v1" || e.DeploymentImage("manual") != repo+":old" {
		t.Fatalf("manual mode deployed or misreported: %+v", cv.Status)
	}
	out, err := e2eenv.RunCLI("release", "--kubeconfig", controlplane.Shared().KubeconfigPath(), "-n", e.NS, "--cv", "manual", "--version", "v1")
	if err != nil {
		t.Fatalf("cvmanager release: %v\n%s", err, out)
	}
	e.WaitStatus("manual", cvv1.StatusSuccess, m1, 30*time.Second)
	if records := e.History("manual"); len(records) != 1 || records[0].Trigger != "release" {
		t.Errorf("history should show the release: %+v", records)
	}
	if _, err := e2eenv.RunCLI("release", "--kubeconfig", controlplane.Shared().KubeconfigPath(), "-n", e.NS, "--cv", "manual"); err == nil ||
		!strings.Contains(err.Error(), "holds no version back") {
		t.Errorf("releasing with nothing held: %v", err)
	}

	// The controller restriction allows only vN and vN-beta here: v4-hotfix is held even
	// though this CV's own policy would allow anything.
	h := reg.MustPush(t, "team/manual", "v4-hotfix", "env-prod")
	waitHeld(e, "manual", h, "RestrictedByController")
}
