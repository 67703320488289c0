package rollouts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// misconfig is a blue-green setup that is wrong in one way.
type misconfig struct {
	name       string
	objects    func(ns, app string) ([]*appsv1.Deployment, []*corev1.Service)
	edit       func(*cvv1.ContainerVersionSpec)
	reason     string
	messageHas string
}

// pairWith builds the standard pair and live/verification Services, then
// lets a case break one thing.
func pairWith(edit func(ds []*appsv1.Deployment, svcs []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service)) func(ns, app string) ([]*appsv1.Deployment, []*corev1.Service) {
	return func(ns, app string) ([]*appsv1.Deployment, []*corev1.Service) {
		ds := []*appsv1.Deployment{
			gen.ColorDeployment(ns, app, "blue", "placeholder:v0", 1), gen.ColorDeployment(ns, app, "green", "placeholder:v0", 1),
		}
		return edit(ds, gen.BlueGreenServices(ns, app))
	}
}

var misconfigs = []misconfig{
	{name: "one-deploy", reason: "NotTwoDeployments", messageHas: "found 1 workload(s): Deployment/one-deploy-blue",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			return ds[:1], s
		})},
	{name: "three-deploys", reason: "NotTwoDeployments", messageHas: "found 3 workload(s)",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			return append(ds, gen.ColorDeployment(ds[0].Namespace, "three-deploys", "red", "placeholder:v0", 1)), s
		})},
	{name: "no-service", reason: "ServiceNotFound", messageHas: "Service no-service not found",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			return ds, s[1:]
		})},
	{name: "no-verify-svc", reason: "VerificationServiceNotFound", messageHas: "Service no-verify-svc-verify not found",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			return ds, s[:1]
		})},
	{name: "label-missing", reason: "LabelMissing", messageHas: `Deployment/label-missing-green pod template has no label "color"`,
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			relabel(ds[1], "color", "tier")
			return ds, s
		})},
	{name: "svc-no-label", reason: "ServiceSelectorMissingLabel", messageHas: `Service svc-no-label selector has no label "color"`,
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			delete(s[0].Spec.Selector, "color")
			return ds, s
		})},
	{name: "same-color", reason: "LabelsNotDistinct", messageHas: "cannot tell them apart",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			ds[1].Spec.Template.Labels["color"], ds[1].Spec.Selector.MatchLabels["color"] = "blue", "blue"
			return ds, s
		})},
	{name: "selects-neither", reason: "ServiceSelectsNeither", messageHas: "Service selects-neither selects neither",
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			s[0].Spec.Selector["color"] = "red"
			return ds, s
		})},
	{name: "no-container", reason: "ContainerNotFound", messageHas: `container "sidecar" not found`,
		objects: pairWith(func(ds []*appsv1.Deployment, s []*corev1.Service) ([]*appsv1.Deployment, []*corev1.Service) {
			return ds, s
		}),
		edit: func(s *cvv1.ContainerVersionSpec) { s.Container.Name = "sidecar" }},
}

func relabel(d *appsv1.Deployment, from, to string) {
	for _, m := range []map[string]string{d.Spec.Template.Labels, d.Spec.Selector.MatchLabels} {
		m[to] = m[from]
		delete(m, from)
	}
}

// TestBlueGreenMisconfigurationsChangeNothing: each broken setup gets a
// condition naming what is wrong, and no Deployment or Service is touched.
func TestBlueGreenMisconfigurationsChangeNothing(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/misconfig")
	reg.MustPush(t, "team/misconfig", "v1", "env-prod")
	for _, c := range misconfigs {
		ds, svcs := c.objects(e.NS, c.name)
		for _, d := range ds {
			_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, d, metav1.CreateOptions{})
			e2eenv.Must(t, err)
		}
		for _, s := range svcs {
			_, err := e.Kube.CoreV1().Services(e.NS).Create(e.Ctx, s, metav1.CreateOptions{})
			e2eenv.Must(t, err)
		}
		cv := blueGreenCV(e, c.name, repo, "verifier:ok")
		if c.edit != nil {
			c.edit(&cv.Spec)
		}
		e.CreateCV(cv)
	}
	e.StartController(reg.Resolver(t))
	for _, c := range misconfigs {
		t.Run(c.name, func(t *testing.T) {
			assertMisconfigured(e, c)
			assertUntouched(t, e, c.name)
		})
	}
}

func assertMisconfigured(e *e2eenv.Env, c misconfig) {
	e.Eventually(30*time.Second, c.name+" reports "+c.reason, func() (bool, error) {
		cv := e.GetCV(c.name)
		for _, cond := range cv.Status.Conditions {
			if cond.Type == cvv1.ConditionReady && cond.Reason == c.reason && strings.Contains(cond.Message, c.messageHas) {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", cv.Status.Conditions)
	})
}

// assertUntouched: every Deployment still has its first generation and
// placeholder image, and the live Service's selector is as created.
func assertUntouched(t *testing.T, e *e2eenv.Env, app string) {
	t.Helper()
	ds, err := e.Kube.AppsV1().Deployments(e.NS).List(e.Ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	e2eenv.Must(t, err)
	for _, d := range ds.Items {
		if d.Generation != 1 || d.Spec.Template.Spec.Containers[0].Image != "placeholder:v0" {
			t.Errorf("%s was changed: generation %d image %s", d.Name, d.Generation, d.Spec.Template.Spec.Containers[0].Image)
		}
	}
	if svc, err := e.Kube.CoreV1().Services(e.NS).Get(e.Ctx, app, metav1.GetOptions{}); err == nil && svc.Spec.Selector["color"] == "green" {
		t.Errorf("Service %s was switched", app)
	}
}
