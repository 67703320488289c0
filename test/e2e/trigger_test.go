package e2e

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/trigger"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestTriggerRollsOutWithoutWaitingForThePoll: with a 10-minute poll
// interval, only the trigger can start the rollout.
func TestTriggerRollsOutWithoutWaitingForThePoll(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/push")
	d1 := reg.MustPush(t, "team/push", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "push", "push", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	m := metrics.New()
	ctrl := e2eenv.NewController(kubernetes.NewForConfigOrDie(e2eenv.ControllerConfig(t)), versioned.NewForConfigOrDie(e2eenv.ControllerConfig(t)),
		controller.Options{Namespace: e.NS, Resolver: reg.Resolver(t), Metrics: m, ProgressInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	go func() { _ = ctrl.Run(ctx) }()
	mux := http.NewServeMux()
	const key = "ci-key-0123456789abcdef"
	requests := controller.NewRequests(versioned.NewForConfigOrDie(e2eenv.ControllerConfig(t)), clock.RealClock{})
	trigger.New([]trigger.APIKey{{Name: "ci", Key: key}}, ctrl.CVLister(), requests, 100).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	e.CreateCV(gen.NewCV(e.NS, "push", repo, func(s *cvv1.ContainerVersionSpec) { s.PollIntervalSeconds = 600 }))
	e.WaitStatus("push", cvv1.StatusSuccess, d1, 60*time.Second)

	d2 := reg.MustPush(t, "team/push", "v2", "env-prod")
	start := time.Now()
	body := `{"namespace":"` + e.NS + `","name":"push"}`
	postTrigger(t, srv.URL, key, body)
	e.Eventually(5*time.Second, "deployment patched after the trigger", func() (bool, error) {
		return e.DeploymentImage("push") == gen.Pinned(repo, "v2", d2), nil
	})
	latency := time.Since(start)
	// The 5 s bound proves the trigger, not the 600 s poll, did it; the
	// latency itself is a benchmark figure, logged here.
	t.Logf("trigger → Deployment patched in %s", latency.Round(time.Millisecond))
	cv := e.WaitStatus("push", cvv1.StatusSuccess, d2, 30*time.Second)
	if records := e.History("push"); len(records) != 2 || records[0].Trigger != "trigger" {
		t.Errorf("history should record the trigger: %+v (status %+v)", records, cv.Status)
	}

	// A replayed trigger (same key, same body) is accepted but can only
	// cause a poll: the registry still says v2, so nothing rolls out again.
	unchanged := testutil.ToFloat64(m.PollsTotal.WithLabelValues("unchanged"))
	postTrigger(t, srv.URL, key, body)
	e.Eventually(5*time.Second, "the replayed trigger polled", func() (bool, error) {
		return testutil.ToFloat64(m.PollsTotal.WithLabelValues("unchanged")) > unchanged, nil
	})
	if records := e.History("push"); len(records) != 2 || e.DeploymentImage("push") != gen.Pinned(repo, "v2", d2) {
		t.Errorf("a replayed trigger rolled out again: %d records, image %s", len(records), e.DeploymentImage("push"))
	}

	// CI's view: the CLI with a wrong key is refused; with the right key and
	// --wait it returns once the new version runs.
	t.Setenv("CVMANAGER_TRIGGER_KEY", "wrong-0123456789abcdef")
	if _, err := e2eenv.RunCLI("trigger", "--url", srv.URL, "-n", e.NS, "--cv", "push"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: %v", err)
	}
	t.Setenv("CVMANAGER_TRIGGER_KEY", key)
	// Over HTTPS with a private CA: refused until --ca-file trusts it.
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	e2eenv.Must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600))
	if _, err := e2eenv.RunCLI("trigger", "--url", tlsSrv.URL, "-n", e.NS, "--cv", "push"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	d3 := reg.MustPush(t, "team/push", "v3", "env-prod")
	out, err := e2eenv.RunCLI("trigger", "--url", tlsSrv.URL, "--ca-file", caFile, "--kubeconfig", controlplane.Shared().KubeconfigPath(),
		"-n", e.NS, "--cv", "push", "--wait", "--timeout", "90s")
	if err != nil || !strings.Contains(out, d3) {
		t.Errorf("trigger --wait: %v\n%s", err, out)
	}

	// The xcnt update manager's call names the image and tag, not the CV:
	// every CV following repo:env-prod is polled, and --wait follows them.
	d4 := reg.MustPush(t, "team/push", "v4", "env-prod")
	out, err = e2eenv.RunCLI("trigger", "--url", srv.URL, "--kubeconfig", controlplane.Shared().KubeconfigPath(),
		"-n", e.NS, "--image", repo, "--tag", "env-prod", "--wait", "--timeout", "90s")
	if err != nil || !strings.Contains(out, "triggered "+e.NS+"/push") || !strings.Contains(out, d4) {
		t.Errorf("trigger --image --tag --wait: %v\n%s", err, out)
	}
	if _, err := e2eenv.RunCLI("trigger", "--url", srv.URL, "--image", repo, "--tag", "env-nowhere"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("trigger of an image no CV follows: %v", err)
	}
	if _, err := e2eenv.RunCLI("trigger", "--url", srv.URL, "--image", repo); err == nil || !strings.Contains(err.Error(), "tag") {
		t.Errorf("--image without --tag: %v", err)
	}
}

// postTrigger sends a trigger request as CI does and expects 202.
func postTrigger(t *testing.T, url, key, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/trigger", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	e2eenv.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger answered %d", resp.StatusCode)
	}
}
