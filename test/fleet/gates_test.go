package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/maturity"
	"cvmanager.dev/cvmanager/pkg/platform"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestPlatformGateOnKwokNodes computes the platforms a Deployment's pods
// can land on from the control plane's kwok node(s), reads real image
// indexes from a real registry through the registry layer, and checks
// that an arm64-only index is refused for amd64 nodes, a two-platform
// index is accepted, a pod pinned to an absent arm64 pool needs nothing,
// and asking again costs 0 registry requests.
func TestPlatformGateOnKwokNodes(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	armOnly, err := reg.PushPlatformIndex("team/multi", []v1.Platform{{OS: "linux", Architecture: "arm64"}}, "arm")
	e2eenv.Must(t, err)
	both, err := reg.PushPlatformIndex("team/multi", []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}, "both")
	e2eenv.Must(t, err)
	_, reader, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 100, Burst: 100}, nil)
	e2eenv.Must(t, err)

	list, err := e.Kube.CoreV1().Nodes().List(e.Ctx, metav1.ListOptions{})
	e2eenv.Must(t, err)
	nodes := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	d := gen.NewDeployment(e.NS, "web", "web", reg.Repo("team/multi")+":both", 1)
	anywhere := platform.NodePlatforms(&d.Spec.Template.Spec, nodes)
	amd64 := platform.Platform{OS: "linux", Architecture: "amd64"}
	if diff := cmp.Diff([]platform.Platform{amd64}, anywhere); diff != "" {
		t.Fatalf("kwok nodes' platforms (-want +got):\n%s", diff)
	}
	d.Spec.Template.Spec.NodeSelector = map[string]string{platform.LabelArch: "arm64"}
	if got := platform.NodePlatforms(&d.Spec.Template.Spec, nodes); len(got) != 0 {
		t.Errorf("a pod pinned to arm64 lands on no kwok node, got %v", got)
	}

	cache := platform.NewCache(reader)
	repo := registry.Repo{Name: reg.Repo("team/multi")}
	lookup := func(digest string) platform.Index {
		if idx, ok := cache.Lookup(digest); ok {
			return idx
		}
		done := make(chan struct{})
		cache.Request(e.Ctx, repo, digest, func() { close(done) })
		<-done
		idx, _ := cache.Lookup(digest)
		return idx
	}
	arm := lookup(armOnly)
	missing := platform.MissingPlatforms(arm.Platforms, anywhere)
	if diff := cmp.Diff([]platform.Platform{amd64}, missing); diff != "" {
		t.Errorf("arm64-only index on amd64 nodes: missing (-want +got):\n%s", diff)
	}
	msg := platform.Message(missing, anywhere)
	t.Logf("PlatformMissing: %s", msg)
	if !strings.Contains(msg, "no manifest for linux/amd64") {
		t.Errorf("message %q", msg)
	}
	if m := platform.MissingPlatforms(lookup(both).Platforms, anywhere); len(m) != 0 {
		t.Errorf("two-platform index: missing %v", m)
	}
	before := reg.Requests()
	lookup(armOnly)
	lookup(both)
	if n := reg.Requests() - before; n != 0 {
		t.Errorf("steady state cost %d registry requests, want 0", n)
	}
}

// TestMinAgeReleasesAtTheStatedTime reads a fresh image's build time from a
// real registry the way provenance does, holds it under a 2 s minAge with
// the time it becomes eligible, and releases it at that time (real clock).
func TestMinAgeReleasesAtTheStatedTime(t *testing.T) {
	reg := e2eenv.NewRegistry(t)
	built := time.Now().UTC().Truncate(time.Second)
	digest, err := reg.PushCreated("team/fresh", built, "v1")
	e2eenv.Must(t, err)
	_, reader, err := poller.NewWithReader(poller.Options{InsecureRegistries: []string{reg.Host}, QPS: 100, Burst: 100}, nil)
	e2eenv.Must(t, err)
	prov, err := provenance.Read(context.Background(), reader, registry.Repo{Name: reg.Repo("team/fresh")}, digest)
	e2eenv.Must(t, err)
	created := maturity.ParseCreated(prov.Created)
	if created == nil || !created.Equal(built) {
		t.Fatalf("build time read %v (%q), want %v", created, prov.Created, built)
	}
	const minAge = 2 * time.Second
	ok, at := maturity.Eligible(created, nil, minAge, time.Now())
	if ok || !at.Equal(built.Add(minAge)) {
		t.Fatalf("fresh image: eligible %v at %v, want held until %v", ok, at, built.Add(minAge))
	}
	t.Logf("held until %s", at.Format(time.RFC3339))
	for time.Now().Before(at) {
		time.Sleep(time.Until(at))
	}
	if ok, _ := maturity.Eligible(created, nil, minAge, time.Now()); !ok {
		t.Error("not eligible at the stated time")
	}
}
