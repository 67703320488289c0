package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
)

const newDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// authzFixture is a controller on fake clientsets whose caches hold one CV
// (by author, selecting Deployment web) and web itself; the fake API
// server allows the reviews listed in grants ("verb resource name").
type authzFixture struct {
	c       *Controller
	kube    *fake.Clientset
	cvs     *cvfake.Clientset
	events  *record.FakeRecorder
	reviews int
}

func newAuthzFixture(t *testing.T, author string, grants ...string) *authzFixture {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "reg.example/app:old"}}}}}}
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg.example/app", Tag: "env-prod",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Container: cvv1.ContainerSpec{Name: "app"}}}
	authz.Stamp(cv, authz.Identity{User: author})
	f := &authzFixture{kube: fake.NewClientset(dep), cvs: newCVClientset(cv), events: record.NewFakeRecorder(10)}
	allowed := map[string]bool{}
	for _, g := range grants {
		allowed[g] = true
	}
	f.kube.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview)
		f.reviews++
		attr := r.Spec.ResourceAttributes
		r.Status.Allowed = r.Spec.User == author && allowed[attr.Verb+" "+attr.Resource+" "+attr.Name]
		return true, r, nil
	})
	factories := NewFactories(f.kube, f.cvs, Scope{})
	f.c = New(f.kube, f.cvs, factories.Informers(), f.events, clocktesting.NewFakeClock(time.Unix(1000, 0)),
		Options{Resolver: &recordingResolver{digest: newDigest}, Authorization: &authz.Settings{}})
	e2e := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	e2e(factories.CVs.Cvmanager().V1alpha1().ContainerVersions().Informer().GetIndexer().Add(cv))
	e2e(factories.Kube.Apps().V1().Deployments().Informer().GetIndexer().Add(dep))
	return f
}

// writes are the fake API's write actions other than reviews.
func (f *authzFixture) writes() []string {
	var out []string
	for _, a := range f.kube.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" && a.GetResource().Resource != "localsubjectaccessreviews" {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

func TestSyncRefusesWhatTheAuthorMayNotDoAndWritesNothing(t *testing.T) {
	f := newAuthzFixture(t, "tenant")
	if err := f.c.sync(context.Background(), "team-a/web"); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes to the cluster for a refused CV: %v", w)
	}
	cv, err := f.cvs.CvmanagerV1alpha1().ContainerVersions("team-a").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cond := findCondition(cv.Status.Conditions, ConditionAuthorized)
	want := "author tenant may not patch deployments.apps/web in namespace team-a"
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != ReasonForbidden || !strings.Contains(cond.Message, want) {
		t.Fatalf("Authorized condition %+v, want False/Forbidden saying %q", cond, want)
	}
	if cv.Status.Rollout != nil || cv.Status.AvailableDigest != newDigest || cv.Status.FailedDigest != "" {
		t.Errorf("status %+v: want no rollout, the version available, not blamed", cv.Status)
	}
	if ev := <-f.events.Events; !strings.HasPrefix(ev, "Warning Forbidden ") || !strings.Contains(ev, want) {
		t.Errorf("event %q", ev)
	}
}

func TestSyncRollsOutForAnAuthorWithTheRightsReviewedOnce(t *testing.T) {
	f := newAuthzFixture(t, "alice", "patch deployments web")
	if err := f.c.sync(context.Background(), "team-a/web"); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 1 || w[0] != "patch deployments" {
		t.Errorf("writes %v, want the one image patch", w)
	}
	// Checked before the rollout started and again before its step (no
	// pull Secrets, no Jobs). alice may patch this Deployment by name only:
	// the first check asks for every Deployment of the namespace (denied),
	// then by name; the second is served from the cache, both answers.
	if s := f.c.AuthzStats(); f.reviews != 2 || s.Reviews != 2 || s.CacheHits != 2 {
		t.Errorf("%d reviews sent, stats %+v; want 2 reviews and 2 hits", f.reviews, s)
	}
}

// newCVClientset is the generated fake without field management: its
// NewClientset needs an apply schema that codegen does not emit here.
func newCVClientset(objs ...runtime.Object) *cvfake.Clientset {
	return cvfake.NewSimpleClientset(objs...) //nolint:staticcheck // see above
}
