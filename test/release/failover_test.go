package release

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// seedService creates in cluster A a plain service: Deployment web (2
// replicas), the Service selecting its pods, its HPA, the ConfigMap its
// CV keeps the version in (spec.config), the CV, and a Helm release with
// three revisions.
func seedService(t *testing.T, e *e2eenv.Env, a *Cluster) {
	t.Helper()
	ctx, ns := e.Ctx, e.NS
	_, err := a.Kube.AppsV1().Deployments(ns).Create(ctx, gen.NewDeployment(ns, "web", "web", "registry.example.com/team/web:v1", 2), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: gen.LabelsFor("web"), Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	_, err = a.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	minReplicas, cpu := int32(2), int32(80)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &minReplicas, MaxReplicas: 4,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu}}}},
		}}
	_, err = a.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-version"}, Data: map[string]string{"version": "v1"}}
	_, err = a.Kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(ns, "web", "registry.example.com/team/web", func(s *cvv1.ContainerVersionSpec) {
		s.Suspend = true // no controller runs here: the objects are what is restored
		s.Config = &cvv1.ConfigSpec{Name: "web-version", Key: "version"}
	}))
	chart := writeChart(t)
	helmCLI(t, "install", "greet", chart, "--kubeconfig", a.Kubeconfig, "--namespace", ns, "--set", "greeting=one")
	for _, g := range []string{"two", "three"} {
		helmCLI(t, "upgrade", "greet", chart, "--kubeconfig", a.Kubeconfig, "--namespace", ns, "--set", "greeting="+g)
	}
}

// TestFailoverRestoresAService is issue 32's "done when": a plain service
// exported from A and imported into an empty B answers (its Service's
// endpoints list B's pods), its Helm release has its 3 revisions and rolls
// back to 2, a second import finds every object identical, and after
// changes an import names the fields that differ.
func TestFailoverRestoresAService(t *testing.T) {
	e := e2eenv.New(t)
	a, b := clusterA(t), clusterB(t)
	seedService(t, e, a)
	dir := filepath.Join(t.TempDir(), "state")
	out, err := e2eenv.RunCLI("state", "export", "local", "--workloads", "--helm-releases", "--path", dir,
		"--kubeconfig", a.Kubeconfig, "--namespace", e.NS)
	if err != nil || !strings.Contains(out, "exported 1 ContainerVersions and 5 workloads") {
		t.Fatalf("export (want the Deployment, Service, HPA, ConfigMap and release): %v\n%s", err, out)
	}
	run := func() string {
		t.Helper()
		out, err := e2eenv.RunCLI("state", "import", "local", "--path", dir, "--kubeconfig", b.Kubeconfig,
			"--namespace", e.NS, "--create-namespaces")
		if err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
		t.Log(strings.TrimSpace(out))
		return out
	}
	if out := run(); !strings.Contains(out, "workloads: 5 created, 0 skipped, 0 failed") ||
		!strings.Contains(out, "revisions 1-3 restored") {
		t.Fatalf("the first import should create all 5, the release with its 3 revisions:\n%s", out)
	}
	waitEndpointsFindPods(t, b, e.NS)

	history := helmCLI(t, "history", "greet", "--kubeconfig", b.Kubeconfig, "--namespace", e.NS)
	rows := regexp.MustCompile(`(?m)^([0-9]+)\s.*\s(superseded|deployed)\s+greeter-1\.2\.3`).FindAllStringSubmatch(history, -1)
	if got := fmt.Sprint(rows); len(rows) != 3 || rows[0][1] != "1" || rows[2][1] != "3" || rows[2][2] != "deployed" {
		t.Fatalf("helm history in B should list revisions 1-3, 3 deployed (%s):\n%s", got, history)
	}
	if greeting := b.greeting(t, e); greeting != "three" {
		t.Errorf("B renders greeting %q, want the last revision's three", greeting)
	}

	if out := run(); strings.Contains(out, "differs") || strings.Count(out, "exists, identical") != 5 {
		t.Errorf("a second import should find all 5 objects identical:\n%s", out)
	}

	helmCLI(t, "rollback", "greet", "2", "--kubeconfig", b.Kubeconfig, "--namespace", e.NS)
	if greeting := b.greeting(t, e); greeting != "two" {
		t.Errorf("after helm rollback to 2, B renders greeting %q, want two", greeting)
	}
	_, err = b.Kube.CoreV1().Services(e.NS).Patch(e.Ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"front"}}}`), metav1.PatchOptions{})
	e2eenv.Must(t, err)
	out = run()
	for _, want := range []string{
		"Service " + e.NS + "/web: exists, differs from the export in metadata.labels.tier: left unchanged",
		"HelmRelease " + e.NS + "/greet: release exists, differs from the export in values.greeting",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after the changes the import should say %q:\n%s", want, out)
		}
	}
}

// greeting is what the release's ConfigMap holds in B now.
func (c *Cluster) greeting(t *testing.T, e *e2eenv.Env) string {
	t.Helper()
	cm, err := c.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "greet-greeting", metav1.GetOptions{})
	e2eenv.Must(t, err)
	return cm.Data["greeting"]
}

// waitEndpointsFindPods waits until the Service web's EndpointSlices in B
// list exactly the ready pods of Deployment web there: what a client of
// the Service would reach.
func waitEndpointsFindPods(t *testing.T, b *Cluster, ns string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		pods, err := b.Kube.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
		e2eenv.Must(t, err)
		want := map[string]bool{}
		for _, p := range pods.Items {
			if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				want[p.Name] = true
			}
		}
		slices, err := b.Kube.DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		e2eenv.Must(t, err)
		got := map[string]bool{}
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.TargetRef != nil && ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					got[ep.TargetRef.Name] = true
				}
			}
		}
		if len(want) == 2 && fmt.Sprint(want) == fmt.Sprint(got) {
			t.Logf("Service web in B: endpoints %v", got)
			return
		}
		last = fmt.Sprintf("pods %v, ready endpoints %v", want, got)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Service web in B does not reach the Deployment's pods: %s", last)
}
