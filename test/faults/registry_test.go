package faults

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// registryFault is one misbehaving registry, each behind its own fault
// proxy (its own host:port), each followed by its own CV and Deployment.
type registryFault struct {
	name string
	// token: the registry behind the proxy requires token auth (the CV
	// gets a pull secret).
	token  bool
	inject func(p *faultproxy.Proxy)
	// persistent faults keep the CV from resolving until cleared: the CV
	// must report RegistryError and nothing may be patched meanwhile.
	persistent bool
}

func manifestUnknown() faultproxy.Fault {
	return faultproxy.Fault{Status: http.StatusNotFound,
		Body: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`}
}

var registryFaults = []registryFault{{
	name: "rate-limited",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Method: http.MethodHead, Kind: "manifests", Times: 2}, faultproxy.TooManyRequests("3"))
	},
}, {
	name: "5xx-burst",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Kind: "manifests", Times: 6}, faultproxy.ServerError(503))
	},
}, {
	// Longer than the client's 15 s response-header timeout.
	name: "timeout",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Kind: "manifests", Times: 1}, faultproxy.Slow(20*time.Second))
	},
}, {
	name: "connection-reset",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Kind: "manifests", Times: 4}, faultproxy.ConnectionReset())
	},
}, {
	// No Docker-Content-Digest on any HEAD: the digest must come from a
	// GET of the manifest, and be the right one.
	name: "no-digest-header",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Method: http.MethodHead, Kind: "manifests"}, faultproxy.NoDigest())
	},
}, {
	name:       "tag-deleted",
	inject:     func(p *faultproxy.Proxy) { p.Inject(faultproxy.Match{Kind: "manifests"}, manifestUnknown()) },
	persistent: true,
}, {
	name:       "token-endpoint-down",
	token:      true,
	inject:     func(p *faultproxy.Proxy) { p.Inject(faultproxy.Match{Kind: "other"}, faultproxy.ServerError(503)) },
	persistent: true,
}}

// malformedManifest: no digest header on HEAD, and a GET answering 200
// with a truncated manifest. The digest of that body names nothing.
var malformedManifest = registryFault{
	name: "malformed-manifest",
	inject: func(p *faultproxy.Proxy) {
		p.Inject(faultproxy.Match{Method: http.MethodHead, Kind: "manifests"}, faultproxy.NoDigest())
		p.Inject(faultproxy.Match{Method: http.MethodGet, Kind: "manifests"},
			faultproxy.Fault{Status: http.StatusOK, Body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`})
	},
	persistent: true,
}

// TestMalformedManifestIsNeverRolledOut: a registry that sends no digest
// header and a truncated manifest on GET leaves the CV Degraded with a
// registry error; nothing is patched, and it recovers once the registry
// answers properly again.
func TestMalformedManifestIsNeverRolledOut(t *testing.T) {
	f := newFixture(t, "steady")
	p, err := faultproxy.Start(f.reg.URL())
	e2eenv.Must(t, err)
	t.Cleanup(func() { _ = p.Close() })
	f.createFaultCase(malformedManifest, p, nil)
	malformedManifest.inject(p)
	f.startController("controller", "--insecure-registry", p.Host)
	cv := f.waitDegraded(malformedManifest.name, "RegistryError")
	if f.generationOf(malformedManifest.name) != 1 || cv.Status.Rollout != nil {
		t.Fatalf("a digest computed from a malformed manifest was rolled out: %s", f.DeploymentImage(malformedManifest.name))
	}
	p.Clear()
	f.WaitStatus(malformedManifest.name, cvv1.StatusSuccess, f.digests[malformedManifest.name], 60*time.Second)
}

// TestRegistryFaults runs one controller over a healthy CV and one CV per
// registry fault above, plus a tag flapping between two digests. It asserts
// that only resolved, valid digests are ever written, that every CV recovers
// without intervention once its registry does, that persistent faults show
// in status, Events and metrics while nothing is patched, and that the
// healthy CV's rollout is not delayed by any of it.
func TestRegistryFaults(t *testing.T) {
	f := newFixture(t, "steady")
	f.createCV()
	images := f.watchImages()
	tokenReg := localregistry.StartForTest(t, localregistry.WithTokenAuth(pullUser, pullPassword, time.Minute))
	proxies := map[string]*faultproxy.Proxy{}
	args := []string{"--insecure-registry", tokenReg.Host}
	for _, rf := range registryFaults {
		target := f.reg.URL()
		if rf.token {
			target = tokenReg.URL()
		}
		p, err := faultproxy.Start(target)
		e2eenv.Must(t, err)
		t.Cleanup(func() { _ = p.Close() })
		proxies[rf.name] = p
		args = append(args, "--insecure-registry", p.Host)
		f.createFaultCase(rf, p, tokenReg)
		rf.inject(p)
	}
	flapV1 := f.reg.MustPush(t, "team/flap", "v1", "env-prod")
	flapV2 := f.reg.MustPush(t, "team/flap", "v2")
	f.createSimpleCase("flap", f.reg.Repo("team/flap"), nil)
	p := f.startController("controller", args...)
	p.waitReady(f)

	// Persistent faults: reported, nothing patched.
	for _, rf := range registryFaults {
		if rf.persistent {
			cv := f.with(t).waitDegraded(rf.name, "RegistryError")
			t.Logf("%s: %s", rf.name, degradedMessage(cv))
			if f.generationOf(rf.name) != 1 || cv.Status.Rollout != nil {
				t.Errorf("%s: patched or rollout started while the registry was failing", rf.name)
			}
			// Events are sent asynchronously, after the status write.
			f.with(t).Eventually(15*time.Second, rf.name+" RegistryError Event", func() (bool, error) {
				return f.EventReasons(rf.name)["RegistryError"] > 0, nil
			})
		}
	}
	if m := regexp.MustCompile(`cvmanager_polls_total\{[^}]*result="error"[^}]*\} ([0-9]+)`).FindStringSubmatch(get(t, p.url()+"/metrics")); m == nil || m[1] == "0" {
		t.Errorf("no poll errors counted in /metrics (%v)", m)
	}

	// The healthy CV keeps its schedule while every fault is active.
	begin := time.Now()
	d := f.rollOut("v1", 30*time.Second)
	latency := time.Since(begin)
	figures.Record(t, "healthy_cv_push_to_success", latency.Seconds(), "s", 15,
		fmt.Sprintf("a CV on a healthy registry, push to Success (5 s poll interval) while %d faulty registries fail (the test fails above 15 s)", len(registryFaults)))
	if latency > 5*time.Second+10*time.Second {
		t.Errorf("healthy CV delayed: %s from push to Success (poll interval 5 s)", latency)
	}

	stopFlap := f.flap("team/flap", 2*time.Second)
	for _, p := range proxies {
		p.Clear()
	}
	// Every faulty registry recovered: each CV rolls out the real digest.
	for _, rf := range registryFaults {
		f.WaitStatus(rf.name, cvv1.StatusSuccess, f.digests[rf.name], 90*time.Second)
	}
	if got := proxies["no-digest-header"].Count(http.MethodGet, "manifests"); got == 0 {
		t.Error("no-digest-header: resolved without a GET, so the digest was not checked")
	}
	stopFlap()
	// The tag settles on the newer version: a move back to v1 after v2
	// ran is a downgrade, which the policy holds for an explicit release.
	_, err := f.reg.MoveTag("team/flap", "env-prod", "v2")
	e2eenv.Must(t, err)
	f.WaitStatus("flap", cvv1.StatusSuccess, flapV2, 60*time.Second)

	valid := map[string][]string{"steady": {f.repo + ":old", gen.Pinned(f.repo, "v1", d)},
		"flap": {f.reg.Repo("team/flap") + ":old", gen.Pinned(f.reg.Repo("team/flap"), "v1", flapV1), gen.Pinned(f.reg.Repo("team/flap"), "v2", flapV2)}}
	for _, rf := range registryFaults {
		repo := proxies[rf.name].Repo("team/" + rf.name)
		valid[rf.name] = []string{repo + ":old", gen.Pinned(repo, "v1", f.digests[rf.name])}
	}
	for name, seen := range images.all() {
		for _, image := range seen {
			if !slices.Contains(valid[name], image) {
				t.Errorf("%s was given %s, not a resolved digest of its tag (valid: %v)", name, image, valid[name])
			}
		}
	}
	t.Logf("flap: %d distinct images written while the tag flapped", len(images.all()["flap"]))
}

// createFaultCase pushes v1 for the case through the registry behind p and
// creates the case's Deployment and CV on p's host.
func (f *fixture) createFaultCase(rf registryFault, p *faultproxy.Proxy, tokenReg *localregistry.Registry) {
	reg := f.reg.Registry
	var edit func(*cvv1.ContainerVersionSpec)
	if rf.token {
		reg = tokenReg
		secret := "creds-" + rf.name
		f.createPullSecret(secret, p.Host)
		edit = func(s *cvv1.ContainerVersionSpec) { s.ImagePullSecrets = []cvv1.LocalObjectReference{{Name: secret}} }
	}
	digest, err := reg.Push("team/"+rf.name, "v1", "env-prod")
	e2eenv.Must(f.T, err)
	if f.digests == nil {
		f.digests = map[string]string{}
	}
	f.digests[rf.name] = digest
	f.createSimpleCase(rf.name, p.Repo("team/"+rf.name), edit)
}

// createSimpleCase creates a 1-replica Deployment name on repo:old and a CV
// following repo.
func (f *fixture) createSimpleCase(name, repo string, edit func(*cvv1.ContainerVersionSpec)) {
	_, err := f.Kube.AppsV1().Deployments(f.NS).Create(f.Ctx, gen.NewDeployment(f.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(f.T, err)
	f.CreateCV(gen.NewCV(f.NS, name, repo, func(s *cvv1.ContainerVersionSpec) {
		if edit != nil {
			edit(s)
		}
	}))
}

// flap moves env-prod of path between v1 and v2 every period until the
// returned function is called.
func (f *fixture) flap(path string, period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(period):
			}
			_, _ = f.reg.MoveTag(path, "env-prod", "v"+strconv.Itoa(2-i%2))
		}
	}()
	return func() {
		time.Sleep(3 * period) // flap for at least a few polls
		close(done)
		wg.Wait()
	}
}

// imageWatch records every image each Deployment of the namespace was
// given, in order.
type imageWatch struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (w *imageWatch) all() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for k, v := range w.seen {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (f *fixture) watchImages() *imageWatch {
	w, err := f.Kube.AppsV1().Deployments(f.NS).Watch(f.Ctx, metav1.ListOptions{})
	e2eenv.Must(f.T, err)
	f.T.Cleanup(w.Stop)
	iw := &imageWatch{seen: map[string][]string{}}
	go func() {
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			image := d.Spec.Template.Spec.Containers[0].Image
			iw.mu.Lock()
			if seen := iw.seen[d.Name]; len(seen) == 0 || seen[len(seen)-1] != image {
				iw.seen[d.Name] = append(seen, image)
			}
			iw.mu.Unlock()
		}
	}()
	return iw
}
