package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestSharedRefCostsOneHeadPerInterval: 20 CVs following one repo:tag, in
// steady state, cost the registry one HEAD per poll interval and no GET
// (a GET of a manifest is what Docker Hub counts as a pull).
func TestSharedRefCostsOneHeadPerInterval(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/shared")
	d1 := reg.MustPush(t, "team/shared", "v1", "env-prod")
	e.StartController(reg.Resolver(t))
	const cvs = 20
	for i := 0; i < cvs; i++ {
		name := fmt.Sprintf("s%02d", i)
		_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 0), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		e.CreateCV(gen.NewCV(e.NS, name, repo))
	}
	for i := 0; i < cvs; i++ {
		e.WaitStatus(fmt.Sprintf("s%02d", i), cvv1.StatusSuccess, d1, 60*time.Second)
	}
	heads, gets, lists := reg.Count("HEAD", "manifests"), reg.Count("GET", "manifests"), reg.Count("GET", "tags")
	const window = 16 * time.Second // covers three 5 s poll intervals
	time.Sleep(window)
	dHeads := reg.Count("HEAD", "manifests") - heads
	dGets := reg.Count("GET", "manifests") - gets
	dLists := reg.Count("GET", "tags") - lists
	t.Logf("steady state over %s with %d CVs on one ref: %d HEAD, %d manifest GET, %d tag lists", window, cvs, dHeads, dGets, dLists)
	if dHeads < 2 || dHeads > 4 {
		t.Errorf("%d HEADs in %s; want one per 5 s interval (3±1), however many CVs", dHeads, window)
	}
	if dGets != 0 || dLists != 0 {
		t.Errorf("steady state must cost no GET and no tag list: %d GET, %d lists", dGets, dLists)
	}
}
