package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/trigger"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/gen"
)

const hookSecret = "hook-secret-0123456789abcdef"

// webhookRig is a controller with the registry webhooks mounted, polling
// a real registry through a fault proxy.
type webhookRig struct {
	e     *e2eenv.Env
	reg   *e2eenv.Registry
	proxy *faultproxy.Proxy
	url   string // the webhooks server
}

func newWebhookRig(t *testing.T, edit ...func(*controller.Options)) *webhookRig {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	proxy := faultproxy.StartForTest(t, reg.URL())
	res, err := poller.New(poller.Options{InsecureRegistries: []string{proxy.Host}}, metrics.New().Registry)
	e2eenv.Must(t, err)
	cfg := e2eenv.ControllerConfig(t)
	opts := e.Options(res)
	for _, f := range edit {
		f(&opts)
	}
	ctrl := e2eenv.NewController(kubernetes.NewForConfigOrDie(cfg), versioned.NewForConfigOrDie(cfg), opts)
	ctx, cancel := context.WithCancel(e.Ctx)
	t.Cleanup(cancel)
	go func() { _ = ctrl.Run(ctx) }()
	hooks, err := trigger.NewWebhooks(hookSecret, ctrl.CVLister(), controller.NewRequests(versioned.NewForConfigOrDie(cfg), clock.RealClock{}), 100)
	e2eenv.Must(t, err)
	mux := http.NewServeMux()
	hooks.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &webhookRig{e: e, reg: reg, proxy: proxy, url: srv.URL}
}

// distributionEvent posts the notification Distribution sends for a push
// of repo:tag at digest, as seen through the proxy's host.
func (r *webhookRig) distributionEvent(t *testing.T, path, tag, digest string) {
	t.Helper()
	body := fmt.Sprintf(`{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"repository":%q,"tag":%q,"digest":%q},"request":{"host":%q}}]}`, path, tag, digest, r.proxy.Host)
	req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/webhooks/distribution", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+hookSecret)
	resp, err := http.DefaultClient.Do(req)
	e2eenv.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
}

// deploy creates the Deployment and a CV polling every pollSeconds, and
// waits for digest to roll out.
func (r *webhookRig) deploy(t *testing.T, name, path, digest string, pollSeconds int32) string {
	repo := r.proxy.Repo(path)
	_, err := r.e.Kube.AppsV1().Deployments(r.e.NS).Create(r.e.Ctx, gen.NewDeployment(r.e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	r.e.CreateCV(gen.NewCV(r.e.NS, name, repo, func(s *cvv1.ContainerVersionSpec) { s.PollIntervalSeconds = pollSeconds }))
	r.e.WaitStatus(name, cvv1.StatusSuccess, digest, 60*time.Second)
	return repo
}

// TestWebhookBeforeTheTagIsVisibleStillRollsOut: the registry announces a
// push while its first HEADs still answer the old digest. The webhook's
// poll re-checks briefly and rolls the new digest out within seconds,
// instead of at the next poll (10 minutes here).
func TestWebhookBeforeTheTagIsVisibleStillRollsOut(t *testing.T) {
	r := newWebhookRig(t)
	d1 := r.reg.MustPush(t, "team/hook", "v1", "env-prod")
	repo := r.deploy(t, "hook", "team/hook", d1, 600)

	d2 := r.reg.MustPush(t, "team/hook", "v2", "env-prod")
	stale := r.proxy.Inject(faultproxy.Match{Method: http.MethodHead, Kind: "manifests", Times: 2}, faultproxy.StaleDigest(d1))
	heads := r.proxy.Count(http.MethodHead, "manifests")
	start := time.Now()
	r.distributionEvent(t, "team/hook", "env-prod", d2)
	r.e.Eventually(8*time.Second, "deployment patched after the webhook", func() (bool, error) {
		return r.e.DeploymentImage("hook") == gen.Pinned(repo, "v2", d2), nil
	})
	latency := time.Since(start)
	t.Logf("push event → Deployment patched in %s; %d stale HEADs, %d HEADs in all",
		latency.Round(time.Millisecond), stale.Hits(), r.proxy.Count(http.MethodHead, "manifests")-heads)
	if stale.Hits() != 2 {
		t.Errorf("the stale answers were not all used (%d of 2): the test proved nothing", stale.Hits())
	}
	cv := r.e.WaitStatus("hook", cvv1.StatusSuccess, d2, 30*time.Second)
	if records := r.e.History("hook"); len(records) == 0 || records[0].Trigger != "webhook" {
		t.Errorf("history should record the webhook: %+v (status %+v)", records, cv.Status)
	}
	r.e.Eventually(5*time.Second, "the webhook's request deleted once acted on", func() (bool, error) {
		return r.e.PendingRequests("hook") == 0, nil
	})
}

// headsFor counts the manifest HEADs the proxy saw for path since index
// from of its request log.
func (r *webhookRig) headsFor(path string, from int) int {
	n := 0
	for _, req := range r.proxy.Requests()[from:] {
		if req.Method == http.MethodHead && strings.HasPrefix(req.Path, "/v2/"+path+"/manifests/") {
			n++
		}
	}
	return n
}

// TestPushFirstPollsCoveredRefsAtTheSafetyInterval: 10 refs polled every
// 5 s, all covered by verified pushes, cost one HEAD per safety interval
// (the default, 10× the CV's interval) each: a tenth of the distinct refs
// per interval. A move no push announced is found by the safety poll, and
// that ref goes back to polling every interval; a pushed tag still rolls
// out at once.
func TestPushFirstPollsCoveredRefsAtTheSafetyInterval(t *testing.T) {
	const refs, interval = 10, 5 * time.Second
	const safety = 10 * interval
	r := newWebhookRig(t, func(o *controller.Options) { o.PushFirst = &controller.PushFirst{TrustWindow: time.Hour} })
	digests := make([]string, refs)
	for i := range refs {
		path := fmt.Sprintf("team/pf-%d", i)
		digests[i] = r.reg.MustPush(t, path, "v1", "env-prod")
		r.deploy(t, fmt.Sprintf("pf-%d", i), path, digests[i], int32(interval/time.Second))
	}
	for i := range refs { // each ref's registry announces a push: covered from now on
		r.distributionEvent(t, fmt.Sprintf("team/pf-%d", i), "env-prod", digests[i])
	}
	r.e.Eventually(10*time.Second, "the pushes' own polls", func() (bool, error) {
		for i := range refs {
			if n := r.e.PendingRequests(fmt.Sprintf("pf-%d", i)); n != 0 {
				return false, fmt.Errorf("pf-%d still has %d pending requests", i, n)
			}
		}
		return true, nil
	})
	time.Sleep(time.Second)
	from := len(r.proxy.Requests())
	d3 := r.reg.MustPush(t, "team/pf-1", "v3", "env-prod") // nobody announces this one
	start := time.Now()
	r.e.Eventually(safety+5*time.Second, "the safety poll found the unannounced move", func() (bool, error) {
		return r.e.DeploymentImage("pf-1") == gen.Pinned(r.proxy.Repo("team/pf-1"), "v3", d3), nil
	})
	t.Logf("unannounced move found by the safety poll after %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Until(start.Add(safety + time.Second)))
	window := time.Since(start)
	heads := 0
	for i := range refs {
		if i != 1 {
			heads += r.headsFor(fmt.Sprintf("team/pf-%d", i), from)
		}
	}
	perInterval := float64(heads) / (float64(window) / float64(interval))
	t.Logf("steady state, %d refs covered by pushes: %d HEADs in %s = %.2f per %s interval, %.3f of the distinct refs (normal polling: 1 per ref)",
		refs-1, heads, window.Round(time.Second), perInterval, interval, perInterval/(refs-1))
	if heads > refs-1 {
		t.Errorf("%d HEADs in one safety interval for %d covered refs (%.2f per interval); want one each, a tenth of the refs per interval",
			heads, refs-1, perInterval)
	}

	from = len(r.proxy.Requests())
	time.Sleep(2*interval + time.Second)
	if n := r.headsFor("team/pf-1", from); n < 2 {
		t.Errorf("after a missed push the ref polled %d times in %s; want every %s again", n, 2*interval+time.Second, interval)
	}
	if n := r.headsFor("team/pf-2", from); n > 0 {
		t.Errorf("a still-covered ref polled %d times between safety polls", n)
	}

	d2 := r.reg.MustPush(t, "team/pf-0", "v2", "env-prod")
	start = time.Now()
	r.distributionEvent(t, "team/pf-0", "env-prod", d2)
	r.e.Eventually(5*time.Second, "the pushed tag rolled out", func() (bool, error) {
		return r.e.DeploymentImage("pf-0") == gen.Pinned(r.proxy.Repo("team/pf-0"), "v2", d2), nil
	})
	t.Logf("push event → Deployment patched in %s on a covered ref", time.Since(start).Round(time.Millisecond))
}
