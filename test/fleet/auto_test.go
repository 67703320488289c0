package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestAutomaticPromotionThroughAKubeconfigSecret: prod's controller follows
// staging's CV through a kubeconfig Secret (spec.promotion.from). A new
// staging version is held in prod while it soaks (ReleaseBlocked Soaking,
// heldUntil), then rolled out in prod with trigger promote; a second prod
// CV whose source cannot be reached is held with SourceUnreachable and
// never rolls anything.
func TestAutomaticPromotionThroughAKubeconfigSecret(t *testing.T) {
	e := e2eenv.New(t)
	staging, prod := newCluster("staging", controlplane.Shared()), prodCluster(t)
	ctx := context.Background()
	_, err := prod.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.NS}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/auto")
	d1 := reg.MustPush(t, "team/auto", "v1", "env-staging")
	startController(t, staging, e.NS, reg.Resolver(t))
	ctrl := e2eenv.NewController(prod.kube, prod.cvs, controller.Options{Namespace: e.NS, Resolver: reg.Resolver(t),
		Metrics: metrics.New(), ProgressInterval: e2eenv.ProgressInterval,
		Fleet: fastObserver(), Kubeconfigs: &fleet.KubeconfigSecrets{Kube: prod.kube, Clock: clock.RealClock{}}})
	runController(t, ctrl)
	deployWeb(t, staging, e.NS, repo, "env-staging")
	waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d1)

	secret := func(name string, kubeconfig []byte) {
		_, err := prod.kube.CoreV1().Secrets(e.NS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string][]byte{"kubeconfig": kubeconfig}}, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	secret("staging", writeKubeconfig(t, "", kubeconfigEntry{"staging", staging.cp.AdminConfig()}))
	secret("nowhere", writeKubeconfig(t, "", kubeconfigEntry{"nowhere", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x"}}))
	follower := func(name, secretName string) {
		_, err := prod.kube.AppsV1().Deployments(e.NS).Create(ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		cv := gen.NewCV(e.NS, name, repo, func(s *cvv1.ContainerVersionSpec) {
			s.Tag = "env-prod" // never moved: the CV follows its source, not its tag
			s.Promotion = &cvv1.PromotionSpec{From: cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: secretName},
				Namespace: e.NS, Name: "web", MinSoakSeconds: ptr.To[int32](3)}}
		})
		_, err = prod.cvs.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(ctx, cv, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	follower("web", "staging")
	follower("lost", "nowhere")
	waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d1)

	d2 := reg.MustPush(t, "team/auto", "v2", "env-staging")
	src := waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d2)
	soakEnds := src.Status.CurrStatusTime.Add(3 * time.Second)
	held := waitHeld(t, prod, e.NS, "web", cvv1.ReasonSoaking)
	if time.Now().Before(soakEnds) && (held.Status.HeldUntil == nil || held.Status.CurrDigest != d1) {
		t.Errorf("while soaking: heldUntil %v, running %s; want a time and v1", held.Status.HeldUntil, held.Status.CurrDigest)
	}
	promoted := waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d2)
	if promoted.Status.CurrStatusTime.Before(&metav1.Time{Time: soakEnds.Truncate(time.Second)}) {
		t.Errorf("promoted at %s, before the soak ended at %s", promoted.Status.CurrStatusTime, soakEnds)
	}
	records, err := history.NewStore(prod.kube).List(ctx, e.NS, "web.history")
	e2eenv.Must(t, err)
	if len(records) == 0 || records[0].Trigger != history.TriggerPromote || records[0].ToDigest != d2 {
		t.Errorf("prod's newest record should be the promotion of v2: %+v", records)
	}

	lost := waitHeld(t, prod, e.NS, "lost", cvv1.ReasonSourceUnreachable)
	if lost.Status.CurrDigest != "" || lost.Status.Rollout != nil {
		t.Errorf("an unreachable source rolled something: %+v", lost.Status)
	}
	dep, err := prod.kube.AppsV1().Deployments(e.NS).Get(ctx, "lost", metav1.GetOptions{})
	e2eenv.Must(t, err)
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":old") {
		t.Errorf("the held CV's Deployment runs %s, want :old untouched", img)
	}
}

// waitHeld waits until the CV's ReleaseBlocked condition has reason.
func waitHeld(t *testing.T, c *cluster, ns, name, reason string) *cvv1.ContainerVersion {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cv, err := c.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(context.Background(), name, metav1.GetOptions{})
		e2eenv.Must(t, err)
		for _, cond := range cv.Status.Conditions {
			if cond.Type == cvv1.ConditionReleaseBlocked && cond.Status == metav1.ConditionTrue && cond.Reason == reason {
				return cv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s/%s never held with %s: %+v", c.name, ns, name, reason, cv.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fastObserver reads sources every second, so the test's soak is seen soon.
func fastObserver() *fleet.Observer {
	o := fleet.NewObserver()
	o.Interval = time.Second
	return o
}

// runController runs ctrl until the test ends.
func runController(t *testing.T, ctrl *e2eenv.Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}
