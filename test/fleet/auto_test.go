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
// heldUntil), then rolled out in prod with trigger promote. A second prod
// CV takes v1 through its own Secret, which then points at a cluster that
// does not answer: it is held with SourceUnreachable and stays on v1 while
// staging moves to v2.
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

	stagingKubeconfig := writeKubeconfig(t, "", kubeconfigEntry{"staging", staging.cp.AdminConfig()})
	secret := func(name string, kubeconfig []byte) {
		_, err := prod.kube.CoreV1().Secrets(e.NS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string][]byte{"kubeconfig": kubeconfig}}, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	secret("staging", stagingKubeconfig)
	secret("lost-source", stagingKubeconfig)
	follower := func(name, secretName string) {
		_, err := prod.kube.AppsV1().Deployments(e.NS).Create(ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		cv := gen.NewCV(e.NS, name, repo, func(s *cvv1.ContainerVersionSpec) {
			s.Tag = "env-prod" // never moved: the CV follows its source, not its tag
			s.Promotion = &cvv1.PromotionSpec{From: cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: secretName},
				Namespace: e.NS, Name: "web", MinSoakSeconds: ptr.To[int32](soakSeconds)}}
		})
		_, err = prod.cvs.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(ctx, cv, metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	follower("web", "staging")
	follower("lost", "lost-source")
	waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d1)
	waitCV(t, prod, e.NS, "lost", cvv1.StatusSuccess, d1)

	// The second follower's source stops answering before staging moves.
	lostSecret, err := prod.kube.CoreV1().Secrets(e.NS).Get(ctx, "lost-source", metav1.GetOptions{})
	e2eenv.Must(t, err)
	lostSecret.Data["kubeconfig"] = writeKubeconfig(t, "", kubeconfigEntry{"nowhere", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x"}})
	_, err = prod.kube.CoreV1().Secrets(e.NS).Update(ctx, lostSecret, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	waitHeld(t, prod, e.NS, "lost", cvv1.ReasonSourceUnreachable)

	d2 := reg.MustPush(t, "team/auto", "v2", "env-staging")
	src := waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d2)
	soakEnds := src.Status.CurrStatusTime.Add(soakSeconds * time.Second)
	// The soak outlasts the observer's 1 s reads several times over, so
	// the hold is seen; a held status names the soak's end and still runs
	// v1, whenever it is read.
	held := waitHeld(t, prod, e.NS, "web", cvv1.ReasonSoaking)
	if held.Status.HeldUntil == nil || held.Status.HeldUntil.Time.Sub(soakEnds).Abs() > time.Second || held.Status.CurrDigest != d1 {
		t.Errorf("while soaking: heldUntil %v (soak ends %s), running %s; want the soak's end and v1", held.Status.HeldUntil, soakEnds, held.Status.CurrDigest)
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

	// web took v2 after the soak; lost, whose source had v2 for as long,
	// is still held on v1.
	lost := waitHeld(t, prod, e.NS, "lost", cvv1.ReasonSourceUnreachable)
	if lost.Status.CurrDigest != d1 || lost.Status.Rollout != nil {
		t.Errorf("an unreachable source moved its follower: running %s, rollout %+v; want v1 (%s) and none", lost.Status.CurrDigest, lost.Status.Rollout, d1)
	}
	dep, err := prod.kube.AppsV1().Deployments(e.NS).Get(ctx, "lost", metav1.GetOptions{})
	e2eenv.Must(t, err)
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, d1) {
		t.Errorf("the held CV's Deployment runs %s, want v1 (%s) untouched", img, d1)
	}
}

// soakSeconds is the followers' minSoakSeconds: several of the observer's
// 1 s reads, so the test sees the hold before it ends.
const soakSeconds = 6

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
