package migration

import (
	"time"

	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

type cvv1Spec = cvv1.ContainerVersionSpec

// TestConfigKeyFollowsTheDeployedVersion covers row "config": the
// ConfigMap key of spec.config equals the deployed version after each
// rollout, and after a failed one is rolled back it names the version
// running again.
func TestConfigKeyFollowsTheDeployedVersion(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/conf")
	d1 := reg.MustPush(t, "team/conf", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "conf", "conf", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "conf", repo, func(s *cvv1Spec) {
		s.Config = &cvv1.ConfigSpec{Name: "conf-version", Key: "VERSION"}
		s.Rollback.Enabled = true
		s.TimeoutSeconds = 20
	}))
	e.StartController(reg.Resolver(t))
	key := func() string {
		cm, err := e.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "conf-version", metav1.GetOptions{})
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return cm.Data["VERSION"]
	}

	e.WaitStatus("conf", cvv1.StatusSuccess, d1, 60*time.Second)
	if got := key(); got != "v1" {
		t.Errorf("after v1: VERSION=%q", got)
	}
	d2 := reg.MustPush(t, "team/conf", "v2", "env-prod")
	e.WaitStatus("conf", cvv1.StatusSuccess, d2, 60*time.Second)
	if got := key(); got != "v2" {
		t.Errorf("after v2: VERSION=%q", got)
	}
	// kwok keeps pods of images containing "unready" from becoming Ready.
	bad := reg.MustPush(t, "team/conf", "v3-unready", "env-prod")
	cv := e.WaitStatus("conf", cvv1.StatusFailed, bad, 90*time.Second)
	if cv.Status.SuccessVersion != "v2" || e.DeploymentImage("conf") != gen.Pinned(repo, "v2", d2) {
		t.Fatalf("not rolled back: success %s image %s", cv.Status.SuccessVersion, e.DeploymentImage("conf"))
	}
	if got := key(); got != "v2" {
		t.Errorf("after the rollback: VERSION=%q, want the version running again", got)
	}
}
