package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/testcerts"
)

// TestReadAuthWithClusterIdentitiesOverTLS runs `cvmanager run
// --read-auth` over HTTPS as the ServiceAccount of the chart rendered with
// readAuth.enabled (proving its RBAC suffices) and asks the real apiserver
// about three callers: a viewer who may read CVs in one namespace, a
// stranger who may read none, and nobody.
func TestReadAuthWithClusterIdentitiesOverTLS(t *testing.T) {
	e := e2eenv.New(t)
	other := controlplane.NewNamespace(t)
	release := installChart(t, "rel-read-auth", "--set", "readAuth.enabled=true", "--set", "tls.secretName=cvmanager-tls")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", "127.0.0.1:1/team/web:v0", 0), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "web", "127.0.0.1:1/team/web"))
	viewer := serviceAccountToken(t, e, "viewer")
	stranger := serviceAccountToken(t, e, "stranger")
	grantCVReads(t, e, "viewer")
	waitUntilAllowed(t, e, release, "cvmanager", authorizationv1.ResourceAttributes{Group: "authorization.k8s.io", Resource: "subjectaccessreviews", Verb: "create"})
	waitUntilAllowed(t, e, e.NS, "viewer", authorizationv1.ResourceAttributes{Group: "cvmanager.dev", Resource: "containerversions", Verb: "list", Namespace: e.NS})

	base, roots := runWithReadAuth(t, e, release)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	e.Eventually(30*time.Second, "the controller's caches hold the workload", func() (bool, error) {
		status, body := getWithToken(t, client, base+"/readyz", "")
		return status == http.StatusOK && strings.Contains(body, `"informersSynced":true`), nil
	})
	checks := []struct {
		who, token, path string
		want             int
		says             string
	}{
		{"nobody", "", "/v1/cv/workloads?namespace=" + e.NS, http.StatusUnauthorized, "bearer token is required"},
		{"a forged token", "not-a-token", "/v1/cv/workloads?namespace=" + e.NS, http.StatusUnauthorized, "did not accept"},
		{"the viewer's token with one more character", viewer + "x", "/v1/cv/workloads?namespace=" + e.NS, http.StatusUnauthorized, "did not accept"},
		{"the viewer", viewer, "/v1/cv/workloads?namespace=" + e.NS, http.StatusOK, `"CV": "web"`},
		{"the viewer", viewer, "/v1/cv/workloads/web?namespace=" + e.NS, http.StatusOK, "[]"},
		{"the viewer", viewer, "/v1/cv/workloads?namespace=" + other, http.StatusForbidden, "may not list containerversions.cvmanager.dev in namespace " + other},
		{"the viewer", viewer, "/v1/cv/workloads", http.StatusForbidden, "in every namespace"},
		{"the viewer", viewer, "/v1/state", http.StatusForbidden, "in every namespace"},
		{"a stranger", stranger, "/v1/cv/workloads?namespace=" + e.NS, http.StatusForbidden, "system:serviceaccount:" + e.NS + ":stranger may not list"},
		{"nobody", "", "/healthz", http.StatusOK, "ok"},
	}
	for _, c := range checks {
		status, body := getWithToken(t, client, base+c.path, c.token)
		if status != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s GET %s: %d %q, want %d saying %q", c.who, c.path, status, body, c.want, c.says)
		}
	}
}

// runWithReadAuth runs `cvmanager run --read-auth` over HTTPS in-process,
// as the release's ServiceAccount, until the test ends, and returns its
// base URL (once ready) and the roots that trust its certificate.
func runWithReadAuth(t *testing.T, e *e2eenv.Env, release string) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := controlplane.Shared().ServiceAccountConfig(e.Ctx, release, "cvmanager")
	e2eenv.Must(t, err)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	e2eenv.Must(t, controlplane.Shared().WriteKubeconfig(cfg, kubeconfig))
	certs := testcerts.Write(t, dir, "cvmanager")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e2eenv.Must(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan error, 1)
	go func() {
		root := cli.NewRootCommand()
		root.SetArgs([]string{"run", "--kubeconfig", kubeconfig, "--namespace", e.NS, "--leader-elect=false", "--port", port,
			"--tls-cert-file", certs.CertFile, "--tls-private-key-file", certs.KeyFile, "--read-auth"})
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("cvmanager run: %v", err)
		}
	})
	return "https://127.0.0.1:" + port, certs.Pool
}

func serviceAccountToken(t *testing.T, e *e2eenv.Env, name string) string {
	t.Helper()
	cfg, err := controlplane.Shared().ServiceAccountConfig(e.Ctx, e.NS, name)
	e2eenv.Must(t, err)
	return cfg.BearerToken
}

// grantCVReads lets account list and get ContainerVersions in the test's
// namespace, as a team's read-only role would.
func grantCVReads(t *testing.T, e *e2eenv.Env, account string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cv-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"cvmanager.dev"}, Resources: []string{"containerversions"}, Verbs: []string{"get", "list"}}},
	}
	_, err := e.Kube.RbacV1().Roles(e.NS).Create(e.Ctx, role, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cv-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.NS, Name: account}},
	}
	_, err = e.Kube.RbacV1().RoleBindings(e.NS).Create(e.Ctx, binding, metav1.CreateOptions{})
	e2eenv.Must(t, err)
}

// waitUntilAllowed waits for the apiserver's RBAC caches to see a new
// binding, so the test's first review is not an early denial.
func waitUntilAllowed(t *testing.T, e *e2eenv.Env, namespace, account string, attrs authorizationv1.ResourceAttributes) {
	t.Helper()
	user := "system:serviceaccount:" + namespace + ":" + account
	e.Eventually(30*time.Second, user+" allowed to "+attrs.Verb+" "+attrs.Resource, func() (bool, error) {
		sar, err := e.Kube.AuthorizationV1().SubjectAccessReviews().Create(e.Ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: []string{"system:serviceaccounts"}, ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed, err
	})
}

// getWithToken GETs url, retrying only while the server is not listening yet.
func getWithToken(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	e2eenv.Must(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Do(req)
		if err != nil && time.Now().Before(deadline) {
			continue
		}
		e2eenv.Must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
}
