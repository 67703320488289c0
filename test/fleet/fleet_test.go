package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// kubeconfigEntry is one context of a kubeconfig written by the test.
type kubeconfigEntry struct {
	name string
	cfg  *rest.Config
}

// writeKubeconfig writes one kubeconfig holding a context per entry, with
// the CA and token inline (what a Secret must hold).
func writeKubeconfig(t *testing.T, path string, entries ...kubeconfigEntry) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	for _, e := range entries {
		ca := e.cfg.CAData
		if len(ca) == 0 && e.cfg.CAFile != "" {
			var err error
			ca, err = os.ReadFile(e.cfg.CAFile)
			e2eenv.Must(t, err)
		}
		kc.Clusters[e.name] = &clientcmdapi.Cluster{Server: e.cfg.Host, CertificateAuthorityData: ca}
		kc.AuthInfos[e.name] = &clientcmdapi.AuthInfo{Token: e.cfg.BearerToken}
		kc.Contexts[e.name] = &clientcmdapi.Context{Cluster: e.name, AuthInfo: e.name}
	}
	kc.CurrentContext = entries[0].name
	data, err := clientcmd.Write(*kc)
	e2eenv.Must(t, err)
	if path != "" {
		e2eenv.Must(t, os.WriteFile(path, data, 0o600))
	}
	return data
}

// startController runs the product's controller on a cluster for ns.
func startController(t *testing.T, c *cluster, ns string, resolver poller.ImageResolver) *e2eenv.Controller {
	t.Helper()
	ctrl := e2eenv.NewController(c.kube, c.cvs, controller.Options{Namespace: ns, Resolver: resolver,
		Metrics: metrics.New(), ProgressInterval: e2eenv.ProgressInterval})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller on %s: %v", c.name, err)
		}
	})
	return ctrl
}

// waitCV waits until the CV has status at digest with no rollout under way.
func waitCV(t *testing.T, c *cluster, ns, name, status, digest string) *cvv1.ContainerVersion {
	t.Helper()
	var cv *cvv1.ContainerVersion
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if cv, err = c.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			last = err
			return false, nil
		}
		last = fmt.Errorf("status %s at %s, rollout %v", cv.Status.CurrStatus, cv.Status.CurrDigest, cv.Status.Rollout)
		return cv.Status.CurrStatus == status && cv.Status.CurrDigest == digest && cv.Status.Rollout == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: CV %s/%s not %s at %s (last: %v)", c.name, ns, name, status, digest, last)
	}
	return cv
}

// deployWeb creates Deployment and CV web (tag tag) in ns of c.
func deployWeb(t *testing.T, c *cluster, ns, repo, tag string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.kube.AppsV1().Deployments(ns).Create(ctx, gen.NewDeployment(ns, "web", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	cv := gen.NewCV(ns, "web", repo, func(s *cvv1.ContainerVersionSpec) { s.Tag = tag; s.TimeoutSeconds = 20 })
	_, err = c.cvs.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
	e2eenv.Must(t, err)
}

// TestCrossClusterPromotion runs a controller in staging and one in prod,
// each on its own control plane, and promotes from one to the other:
// refused while the source soaks, done once it has, rolled out by prod's
// controller, recorded with the source cluster in prod's history. Then
// status --contexts shows both clusters, and a dead third as unreachable.
func TestCrossClusterPromotion(t *testing.T) {
	e := e2eenv.New(t)
	staging, prod := newCluster("staging", controlplane.Shared()), prodCluster(t)
	_, err := prod.kube.CoreV1().Namespaces().Create(e.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.NS}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/web")
	d1 := reg.MustPush(t, "team/web", "v1", "env-staging", "env-prod")
	startController(t, staging, e.NS, reg.Resolver(t))
	startController(t, prod, e.NS, reg.Resolver(t))
	deployWeb(t, staging, e.NS, repo, "env-staging")
	deployWeb(t, prod, e.NS, repo, "env-prod")
	waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d1)
	waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d1)
	d2 := reg.MustPush(t, "team/web", "v2", "env-staging")
	src := waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d2)

	dir := t.TempDir()
	both := filepath.Join(dir, "fleet.kubeconfig")
	writeKubeconfig(t, both, kubeconfigEntry{"staging", staging.cp.AdminConfig()}, kubeconfigEntry{"prod", prod.cp.AdminConfig()},
		kubeconfigEntry{"gone", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x", TLSClientConfig: rest.TLSClientConfig{CAData: nil}}})
	key := e.NS + "/web"

	t.Run("status --contexts before: prod behind", func(t *testing.T) {
		out, err := e2eenv.RunCLI("status", "--kubeconfig", both, "--contexts", "staging,prod")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Log("\n" + out)
		if !strings.Contains(out, key+" *") || !strings.Contains(out, "v2 Success") || !strings.Contains(out, "v1 Success") {
			t.Errorf("want %s marked as differing, v2 in staging and v1 in prod:\n%s", key, out)
		}
	})

	// The soak ends 3 s after now, counted from when staging reached v2.
	soak := time.Since(src.Status.CurrStatusTime.Time).Round(time.Second) + 3*time.Second
	soakEnds := src.Status.CurrStatusTime.Add(soak)
	promote := []string{"promote", "--kubeconfig", both, "--from-context", "staging", "--to-context", "prod",
		"--from", key, "--to", key, "--insecure", "--min-soak", soak.String()}
	t.Run("refused while soaking", func(t *testing.T) {
		out, err := e2eenv.RunCLI(promote...)
		if err == nil || !strings.Contains(err.Error(), "Soaking") {
			t.Fatalf("promote while soaking: %v\n%s", err, out)
		}
		t.Log(err)
		if cv := waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d1); cv.Status.CurrDigest != d1 {
			t.Errorf("prod moved")
		}
	})

	// Wait out the soak on the wall clock (the refusal above named this time).
	for time.Now().Before(soakEnds) {
		time.Sleep(time.Until(soakEnds))
	}
	t.Run("promoted after the soak, with a kubeconfig per cluster", func(t *testing.T) {
		stagingFile, prodFile := filepath.Join(dir, "staging"), filepath.Join(dir, "prod")
		writeKubeconfig(t, stagingFile, kubeconfigEntry{"s", staging.cp.AdminConfig()})
		writeKubeconfig(t, prodFile, kubeconfigEntry{"p", prod.cp.AdminConfig()})
		out, err := e2eenv.RunCLI("promote", "--cluster-kubeconfig", "staging="+stagingFile, "--cluster-kubeconfig", "prod="+prodFile,
			"--from", "staging/"+key, "--to", "prod/"+key, "--insecure", "--min-soak", soak.String(), "--actor", "fleet-test")
		if err != nil || !strings.Contains(out, "promoted v2 ("+d2+") from staging/"+key+" to prod/"+key) {
			t.Fatalf("promote after the soak: %v\n%s", err, out)
		}
		t.Log(strings.TrimSpace(out))
		waitCV(t, prod, e.NS, "web", cvv1.StatusSuccess, d2)
		records, err := history.NewStore(prod.kube).List(e.Ctx, e.NS, "web.history")
		e2eenv.Must(t, err)
		found := false
		for _, r := range records {
			found = found || (r.Action == history.ActionPromote && r.From == "staging/"+key && r.Actor == "fleet-test" && r.ToDigest == d2)
		}
		if !found {
			t.Errorf("prod's history lacks the promotion from staging/%s: %+v", key, records)
		}
	})

	t.Run("status --contexts after, with a dead cluster", func(t *testing.T) {
		out, err := e2eenv.RunCLI("status", "--kubeconfig", both, "--contexts", "staging,prod,gone")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Log("\n" + out)
		row := lineOf(out, key) // other tests' CVs share these clusters
		if strings.Contains(row, key+" *") || strings.Count(row, "v2 Success") != 2 || !strings.Contains(out, "gone: unreachable") {
			t.Errorf("want v2 in both, no difference, gone unreachable:\n%s", out)
		}
	})
}

// TestSourceReaderWithLeastPrivilege reads the promotion source through a
// kubeconfig Secret made for a ServiceAccount that may only get
// containerversions in the source namespace: the read and the gate work,
// nothing else is readable with it, and an unreachable source holds.
func TestSourceReaderWithLeastPrivilege(t *testing.T) {
	e := e2eenv.New(t)
	staging := newCluster("staging", controlplane.Shared())
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/api")
	d1 := reg.MustPush(t, "team/api", "v1", "env-staging")
	startController(t, staging, e.NS, reg.Resolver(t))
	deployWeb(t, staging, e.NS, repo, "env-staging")
	waitCV(t, staging, e.NS, "web", cvv1.StatusSuccess, d1)

	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "cvmanager-fleet-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{cvv1.SchemeGroupVersion.Group}, Resources: []string{"containerversions"}, Verbs: []string{"get"}}}}
	_, err := e.Kube.RbacV1().Roles(e.NS).Create(e.Ctx, role, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "cvmanager-fleet-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: e.NS, Name: "fleet-reader"}}}
	_, err = e.Kube.RbacV1().RoleBindings(e.NS).Create(e.Ctx, binding, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	readerCfg, err := staging.cp.ServiceAccountConfig(e.Ctx, e.NS, "fleet-reader")
	e2eenv.Must(t, err)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "staging"},
		Data: map[string][]byte{"kubeconfig": writeKubeconfig(t, "", kubeconfigEntry{"staging", readerCfg})}}

	target := gen.NewCV(e.NS, "web-prod", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Promotion = &cvv1.PromotionSpec{From: cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: "staging"},
			Namespace: e.NS, Name: "web", MinSoakSeconds: ptr.To[int32](3600)}}
	})
	// The API server accepts the new fields and fills the defaults.
	created, err := e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, target, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	if created.Spec.Promotion.From.ClusterSecretRef.Key != "kubeconfig" {
		t.Errorf("clusterSecretRef.key default: %q", created.Spec.Promotion.From.ClusterSecretRef.Key)
	}

	_, err = e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, secret, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	secrets := &fleet.KubeconfigSecrets{Kube: e.Kube, Clock: clock.RealClock{}}
	kubeconfig, err := secrets.Get(e.Ctx, created)
	e2eenv.Must(t, err)
	if fleet.SecretName(created) != "staging" {
		t.Errorf("SecretName = %q", fleet.SecretName(created))
	}
	reader := fleet.NewReader()
	src, err := reader.Read(e.Ctx, kubeconfig, e.NS, "web")
	e2eenv.Must(t, err)
	now := src.Status.CurrStatusTime.Add(10 * time.Minute)
	if d := fleet.Decide(created, src, nil, false, now); !d.Hold || d.Reason != cvv1.ReasonSoaking || d.HeldUntil == nil ||
		!d.HeldUntil.Equal(src.Status.CurrStatusTime.Add(time.Hour)) {
		t.Errorf("10 min into a 1 h soak: %+v", d)
	}
	if d := fleet.Decide(created, src, nil, false, src.Status.CurrStatusTime.Add(time.Hour)); !d.Promote || d.Digest != d1 {
		t.Errorf("after the soak: %+v", d)
	}

	// The reader's rights end there.
	rc, err := fleet.RESTConfigFromSecret(kubeconfig)
	e2eenv.Must(t, err)
	if _, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Secrets(e.NS).List(e.Ctx, metav1.ListOptions{}); err == nil {
		t.Error("the fleet reader could list Secrets")
	}

	// An unreachable source holds the target and names the reason.
	dead := writeKubeconfig(t, "", kubeconfigEntry{"dead", &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "x"}})
	_, readErr := reader.Read(e.Ctx, dead, e.NS, "web")
	if d := fleet.Decide(created, nil, readErr, false, now); readErr == nil || !d.Hold || d.Promote || d.Reason != cvv1.ReasonSourceUnreachable {
		t.Errorf("unreachable source: err %v, decision %+v", readErr, d)
	}
}

// lineOf is the line of out that starts with the row key (after spaces).
func lineOf(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), key+" ") {
			return line
		}
	}
	return ""
}
