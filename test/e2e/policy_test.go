package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/test/controlplane"
)

// waitHeld waits until the CV holds digest back with the given reason.
func (e *env) waitHeld(name, digest, reason string) *cvv1.ContainerVersion {
	e.t.Helper()
	var cv *cvv1.ContainerVersion
	e.eventually(30*time.Second, "version held: "+reason, func() (bool, error) {
		cv = e.getCV(name)
		return cv.Status.AvailableDigest == digest && conditionIs(cv, cvv1.ConditionReleaseBlocked, reason), nil
	})
	return cv
}

func conditionIs(cv *cvv1.ContainerVersion, condType, reason string) bool {
	for _, c := range cv.Status.Conditions {
		if c.Type == condType && c.Reason == reason && c.Status == metav1.ConditionTrue {
			return true
		}
	}
	return false
}

// TestAllowedVersionsBlocksAndManualReleaseWaits: a version outside
// allowedVersions is never deployed; in Manual mode a version waits for
// `cvmanager release`; a controller restriction holds a version no CV can
// allow.
func TestAllowedVersionsBlocksAndManualReleaseWaits(t *testing.T) {
	e := newEnv(t)
	reg := newTestRegistry(t)
	restriction, err := policy.ParseRestriction(e.ns + "=^v[0-9]+(-beta)?$")
	must(t, err)
	e.startController(reg.resolver(t), func(o *controller.Options) { o.Restrictions = []policy.Restriction{restriction} })

	// allowedVersions
	repo := reg.repo("team/allowed")
	d1 := reg.push(t, "team/allowed", "v1", "env-prod")
	_, err = e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "allowed", "allowed", repo+":old", 1), metav1.CreateOptions{})
	must(t, err)
	e.createCV(newCV(e.ns, "allowed", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{AllowedVersions: "v[0-9]+"}
	}))
	e.waitStatus("allowed", cvv1.StatusSuccess, d1, 60*time.Second)
	beta := reg.push(t, "team/allowed", "v2-beta", "env-prod")
	e.waitHeld("allowed", beta, "VersionNotAllowed")
	if got := e.deploymentImage("allowed"); got != pinned(repo, "v1", d1) {
		t.Errorf("blocked version deployed: %s", got)
	}
	if e.eventReasons("allowed")[controller.ReasonReleaseBlocked] == 0 {
		t.Error("no ReleaseBlocked event")
	}
	d3 := reg.push(t, "team/allowed", "v3", "env-prod")
	e.waitStatus("allowed", cvv1.StatusSuccess, d3, 60*time.Second)

	// Manual release mode, released with the CLI as a user would.
	repo = reg.repo("team/manual")
	m1 := reg.push(t, "team/manual", "v1", "env-prod")
	_, err = e.kube.AppsV1().Deployments(e.ns).Create(e.ctx, newDeployment(e.ns, "manual", "manual", repo+":old", 1), metav1.CreateOptions{})
	must(t, err)
	e.createCV(newCV(e.ns, "manual", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Policy = &cvv1.PolicySpec{ReleaseMode: "Manual"}
	}))
	cv := e.waitHeld("manual", m1, "AwaitingRelease")
	if cv.Status.AvailableVersion != "v1" || e.deploymentImage("manual") != repo+":old" {
		t.Fatalf("manual mode deployed or misreported: %+v", cv.Status)
	}
	out, err := runCLI("release", "--kubeconfig", controlplane.Shared().KubeconfigPath(), "-n", e.ns, "--cv", "manual", "--version", "v1")
	if err != nil {
		t.Fatalf("cvmanager release: %v\n%s", err, out)
	}
	e.waitStatus("manual", cvv1.StatusSuccess, m1, 30*time.Second)
	if records := e.history("manual"); len(records) != 1 || records[0].Trigger != "release" {
		t.Errorf("history should show the release: %+v", records)
	}
	if _, err := runCLI("release", "--kubeconfig", controlplane.Shared().KubeconfigPath(), "-n", e.ns, "--cv", "manual"); err == nil ||
		!strings.Contains(err.Error(), "holds no version back") {
		t.Errorf("releasing with nothing held: %v", err)
	}

	// The controller restriction allows only vN and vN-beta here: v4-hotfix is held even
	// though this CV's own policy would allow anything.
	h := reg.push(t, "team/manual", "v4-hotfix", "env-prod")
	e.waitHeld("manual", h, "RestrictedByController")
}

func runCLI(args ...string) (string, error) {
	root := cli.NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
