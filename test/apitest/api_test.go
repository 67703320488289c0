// Package apitest checks the ContainerVersion API as the real apiserver serves
// it: the generated CRD installs, validation rejects bad specs with messages a
// person understands, status is only written through its subresource, and the
// generated clientset and informers work.
package apitest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/generated/informers/externalversions"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/kubetest"
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}))
}

func setup(t *testing.T) (context.Context, versioned.Interface, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := kubetest.InstallCRDs(ctx, controlplane.SharedConfig()); err != nil {
		t.Fatal(err)
	}
	client, err := versioned.NewForConfig(controlplane.SharedConfig())
	if err != nil {
		t.Fatal(err)
	}
	return ctx, client, controlplane.NewNamespace(t)
}

func TestCRDIsEstablishedWithPrinterColumns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds, err := kubetest.InstallCRDs(ctx, controlplane.SharedConfig())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for i, c := range crds {
		names[c.Name] = i
	}
	cvIndex, okCV := names["containerversions.cvmanager.dev"]
	reqIndex, okReq := names["containerversionrequests.cvmanager.dev"]
	if len(crds) != 2 || !okCV || !okReq {
		t.Fatalf("want the ContainerVersion and ContainerVersionRequest CRDs, got %v", names)
	}
	if short := crds[reqIndex].Spec.Names.ShortNames; len(short) != 1 || short[0] != "cvreq" {
		t.Errorf("ContainerVersionRequest short names %v, want [cvreq]", short)
	}
	crd := crds[cvIndex]
	if crd.Spec.Names.ShortNames[0] != "cv" {
		t.Errorf("unexpected names: %s %v", crd.Name, crd.Spec.Names.ShortNames)
	}
	var columns []string
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		columns = append(columns, c.Name)
	}
	if diff := cmp.Diff([]string{"Tag", "Version", "Status", "Age"}, columns); diff != "" {
		t.Errorf("printer columns (-want +got):\n%s", diff)
	}
}

func TestValidCVRoundTripsWithDefaults(t *testing.T) {
	ctx, client, ns := setup(t)
	created, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, gen.CV(ns, "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("valid CV rejected: %v", err)
	}
	got, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := gen.CV(ns, "web").Spec
	want.VersionSyntax = cvv1.DefaultVersionSyntax
	want.PollIntervalSeconds = 60
	want.LivenessSeconds = 600
	want.TimeoutSeconds = 300
	want.History.Limit = 50
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("spec after round trip with defaults (-want +got):\n%s", diff)
	}
	if got.UID != created.UID {
		t.Errorf("UID changed between create and get")
	}
}

func TestInformerSeesCVs(t *testing.T) {
	ctx, client, ns := setup(t)
	factory := externalversions.NewSharedInformerFactoryWithOptions(client, 0, externalversions.WithNamespace(ns))
	informer := factory.Cvmanager().V1alpha1().ContainerVersions()
	lister := informer.Lister()
	informer.Informer() // register before Start
	stop := make(chan struct{})
	factory.Start(stop)
	defer func() { close(stop); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		t.Fatal("informer did not sync")
	}
	if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, gen.CV(ns, "api"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := lister.ContainerVersions(ns).Get("api")
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("lister never saw the CV: %v", err)
	}
}

func TestStatusOnlyThroughSubresource(t *testing.T) {
	ctx, client, ns := setup(t)
	cvs := client.CvmanagerV1alpha1().ContainerVersions(ns)
	cv, err := cvs.Create(ctx, gen.CV(ns, "status"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A status change sent through the main resource is dropped.
	cv.Status.CurrVersion = "ignored"
	cv, err = cvs.Update(ctx, cv, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cv.Status.CurrVersion != "" {
		t.Errorf("status written through the main resource: %q", cv.Status.CurrVersion)
	}

	// Through the subresource it sticks, and spec changes there are dropped.
	cv.Status.CurrVersion = "abc1234"
	cv.Status.CurrStatus = cvv1.StatusSuccess
	since := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	cv.Status.AvailableDigest, cv.Status.AvailableSince = "sha256:"+strings.Repeat("b", 64), &since
	cv.Spec.Tag = "changed-through-status"
	cv, err = cvs.UpdateStatus(ctx, cv, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cv.Status.CurrVersion != "abc1234" || cv.Status.CurrStatus != cvv1.StatusSuccess {
		t.Errorf("status not written through the subresource: %+v", cv.Status)
	}
	if cv.Status.AvailableSince == nil || !cv.Status.AvailableSince.Equal(&since) {
		t.Errorf("status.availableSince %v, want %v kept by the schema", cv.Status.AvailableSince, since)
	}
	if cv.Spec.Tag != "env-prod" {
		t.Errorf("spec changed through the status subresource: tag=%q", cv.Spec.Tag)
	}
}

func TestInvalidCVsAreRejectedWithClearMessages(t *testing.T) {
	ctx, client, ns := setup(t)
	type spec = cvv1.ContainerVersionSpec
	cases := []struct {
		name    string
		edit    func(*spec)
		message string
	}{
		{"tag in imageRepo", func(s *spec) { s.ImageRepo = "nginx:1.25" }, "imageRepo must not contain a tag"},
		{"digest in imageRepo", func(s *spec) { s.ImageRepo = "nginx@sha256:" + strings.Repeat("a", 64) }, "imageRepo must not contain a digest"},
		{"uppercase repository", func(s *spec) { s.ImageRepo = "Team/App" }, "imageRepo must be a repository name"},
		{"empty imageRepo", func(s *spec) { s.ImageRepo = "" }, "spec.imageRepo"},
		{"tag with a slash", func(s *spec) { s.Tag = "env/prod" }, "tag must be a valid image tag"},
		{"tag starting with a dot", func(s *spec) { s.Tag = ".hidden" }, "tag must be a valid image tag"},
		{"tag too long", func(s *spec) { s.Tag = strings.Repeat("a", 129) }, "spec.tag: Too long"},
		{"poll interval too short", func(s *spec) { s.PollIntervalSeconds = 1 }, "spec.pollIntervalSeconds: Invalid value: 1: spec.pollIntervalSeconds in body should be greater than or equal to 5"},
		{"poll interval too long", func(s *spec) { s.PollIntervalSeconds = 90000 }, "should be less than or equal to 86400"},
		{"empty selector", func(s *spec) { s.Selector = &metav1.LabelSelector{} }, "selector must not be empty"},
		{"missing container name", func(s *spec) { s.Container.Name = "" }, "spec.container.name"},
		{"container name not a DNS label", func(s *spec) { s.Container.Name = "App_1" }, "container.name must be a DNS label"},
		{"unknown strategy", func(s *spec) { s.Strategy.Kind = "Canary" }, `Unsupported value: "Canary"`},
		{"blue-green without its settings", func(s *spec) { s.Strategy.Kind = cvv1.StrategyServiceBlueGreen }, "strategy.kind ServiceBlueGreen needs strategy.blueGreen"},
		{"blue-green without label names", func(s *spec) {
			s.Strategy = cvv1.StrategySpec{Kind: cvv1.StrategyServiceBlueGreen, BlueGreen: &cvv1.BlueGreenSpec{ServiceName: "web"}}
		}, "spec.strategy.blueGreen.labelNames"},
		{"semver policy without range", func(s *spec) { s.Policy = &cvv1.PolicySpec{Selection: cvv1.SelectSemver} }, "policy.selection Semver needs policy.semverRange"},
		{"history limit zero or less", func(s *spec) { s.History = cvv1.HistorySpec{Enabled: true, Limit: -1} }, "spec.history.limit"},
		{"config without key", func(s *spec) { s.Config = &cvv1.ConfigSpec{Name: "versions"} }, "spec.config.key"},
		{"migration job with neither template nor templateJobName", func(s *spec) {
			s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "migrate"}}}
		}, "needs exactly one of template or templateJobName"},
		{"unknown provider", func(s *spec) { s.Provider = "gcp" }, `Unsupported value: "gcp"`},
		{"provider AWS on a non-ECR host", func(s *spec) { s.ImageRepo, s.Provider = "europe-docker.pkg.dev/p/r/app", "AWS" }, "provider AWS needs an ECR imageRepo"},
		{"notification of unknown type", func(s *spec) {
			s.Notifications = []cvv1.NotificationSpec{{Name: "n", Type: "Email", URLSecretRef: cvv1.SecretKeyRef{Name: "s", Key: "url"}}}
		}, `Unsupported value: "Email"`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cv := gen.CV(ns, fmt.Sprintf("bad-%d", i), gen.WithSpec(tc.edit))
			_, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
			if err == nil {
				t.Fatalf("invalid CV accepted")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error does not explain the problem:\n got: %v\nwant: …%s…", err, tc.message)
			}
		})
	}
}

// TestCloudProvidersAreAccepted: every provider is admitted where it fits.
func TestCloudProvidersAreAccepted(t *testing.T) {
	ctx, client, ns := setup(t)
	cases := []struct{ provider, repo string }{
		{"Generic", "ghcr.io/team/app"},
		{"AWS", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"},
		{"GCP", "europe-docker.pkg.dev/proj/repo/app"},
		{"Azure", "team.azurecr.io/app"},
	}
	for i, c := range cases {
		cv := gen.CV(ns, fmt.Sprintf("provider-%d", i), gen.WithSpec(func(s *cvv1.ContainerVersionSpec) {
			s.ImageRepo, s.Provider = c.repo, c.provider
		}))
		got, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("provider %s on %s rejected: %v", c.provider, c.repo, err)
		}
		if got.Spec.Provider != c.provider {
			t.Errorf("provider %s stored as %q", c.provider, got.Spec.Provider)
		}
	}
}

func TestKubectlShowsPrinterColumns(t *testing.T) {
	ctx, client, ns := setup(t)
	if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, gen.CV(ns, "cols"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := controlplane.Shared().Kubectl("get", "cv", "-n", ns)
	if err != nil {
		t.Fatalf("kubectl get cv: %v\n%s", err, out)
	}
	header := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	if diff := cmp.Diff([]string{"NAME", "TAG", "VERSION", "STATUS", "AGE"}, header); diff != "" {
		t.Errorf("kubectl columns (-want +got):\n%s\n%s", diff, out)
	}
	if !strings.Contains(string(out), "env-prod") {
		t.Errorf("kubectl output lacks the tag:\n%s", out)
	}
}
