package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
)

// ref is one repo:tag many CVs may follow. The tag followed is always
// env-prod; each push adds a version tag v<n> on the same image.
type ref struct {
	path    string // repository path on the registry, e.g. bench/app-00042
	version int
	digest  string
}

// member is one CV with its Deployment.
type member struct {
	ns, cv, deploy string
	ref            *ref
}

// population is the CVs, Deployments and refs created so far. It only
// grows: scale 1,000 keeps the 100 CVs of scale 100 and adds 900.
type population struct {
	env     *env
	cfg     *config
	prefix  string
	refs    []*ref
	members []member
	// author is the admin, recorded on every CV (cvmanager acts for a CV
	// only within its author's rights; an admin may do everything).
	author     authz.Identity
	authorOnce sync.Once
	// host is the registry host the CVs and Deployments name (default: the
	// bench's counting proxy); pushTo pushes an image under tags (default:
	// straight to the bench's registry). The push-first scenario sets both.
	host   string
	pushTo func(path string, tags ...string) (string, error)
	// edit, when set, completes each new CV before it is created (the
	// write-back figure adds spec.writeBack).
	edit func(m member, cv *cvv1.ContainerVersion)
}

func newPopulation(e *env, cfg *config) *population {
	return &population{env: e, cfg: cfg, prefix: "bench"}
}

// registryHost is the host the population's images are pulled from.
func (p *population) registryHost() string {
	if p.host != "" {
		return p.host
	}
	return p.env.proxy.host
}

// growTo creates refs, namespaces, Deployments and CVs until there are n
// CVs, each CV's status seeded as a controller in steady state leaves it.
func (p *population) growTo(ctx context.Context, n int, refFor func(i int) int) error {
	from := len(p.members)
	if n <= from {
		return nil
	}
	wantRefs := refFor(n-1) + 1
	if err := p.pushRefs(ctx, wantRefs); err != nil {
		return err
	}
	for i := from; i < n; i++ {
		ns := fmt.Sprintf("%s-%02d", p.prefix, i/p.cfg.perNamespace)
		p.members = append(p.members, member{ns: ns, cv: fmt.Sprintf("cv-%05d", i), deploy: fmt.Sprintf("d-%05d", i), ref: p.refs[refFor(i)]})
	}
	if err := p.createNamespaces(ctx, from, n); err != nil {
		return err
	}
	return parallel(ctx, 48, n-from, func(k int) error { return p.createMember(ctx, p.members[from+k]) })
}

// pushRefs pushes one tiny image per new ref, tagged v1 and env-prod.
func (p *population) pushRefs(ctx context.Context, want int) error {
	from := len(p.refs)
	for i := from; i < want; i++ {
		p.refs = append(p.refs, &ref{path: fmt.Sprintf("%s/app-%05d", p.prefix, i)})
	}
	return parallel(ctx, 16, want-from, func(k int) error { return p.push(p.refs[from+k]) })
}

// push moves r's env-prod tag to a new image with the next version tag.
func (p *population) push(r *ref) error {
	version := r.version + 1
	pushTo := p.env.reg.Push
	if p.pushTo != nil {
		pushTo = p.pushTo
	}
	digest, err := pushTo(r.path, fmt.Sprintf("v%d", version), "env-prod")
	if err != nil {
		return fmt.Errorf("pushing %s: %w", r.path, err)
	}
	r.version, r.digest = version, digest
	return nil
}

func (p *population) createNamespaces(ctx context.Context, from, to int) error {
	seen := map[string]bool{}
	for _, m := range p.members[from:to] {
		if seen[m.ns] {
			continue
		}
		seen[m.ns] = true
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: m.ns}}
		if _, err := p.env.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// image is the pinned reference cvmanager writes, through the proxy host.
func (p *population) image(r *ref) string {
	return fmt.Sprintf("%s/%s:v%d@%s", p.registryHost(), r.path, r.version, r.digest)
}

// createMember creates a 0-replica Deployment already on the ref's image
// and a CV whose status says so, as if an earlier controller had rolled it
// out. lastPolled is spread over the past --last-polled-interval, as
// steady state leaves it, so the steady interval sees the steady rate of
// lastPolled writes.
func (p *population) createMember(ctx context.Context, m member) error {
	labels := map[string]string{"app": m.cv}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.ns, Name: m.deploy, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: p.image(m.ref)}},
					TerminationGracePeriodSeconds: ptr.To[int64](0)},
			},
		},
	}
	if _, err := p.env.kube.AppsV1().Deployments(m.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	p.authorOnce.Do(func() { p.author, _ = authz.WhoAmI(ctx, p.env.kube) })
	newCV := p.newCV(m, labels)
	if p.edit != nil {
		p.edit(m, newCV)
	}
	authz.Stamp(newCV, p.author)
	cv, err := p.env.cvs.CvmanagerV1alpha1().ContainerVersions(m.ns).Create(ctx, newCV, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := time.Now()
	polled := now.Add(-time.Duration(rand.Int64N(max(int64(p.cfg.lastPolled), 1))))
	cv.Status = cvv1.ContainerVersionStatus{
		CurrVersion: fmt.Sprintf("v%d", m.ref.version), CurrDigest: m.ref.digest, CurrStatus: cvv1.StatusSuccess,
		CurrStatusTime: &metav1.Time{Time: now}, SuccessVersion: fmt.Sprintf("v%d", m.ref.version),
		SuccessDigest: m.ref.digest, LastPolled: &metav1.Time{Time: polled},
	}
	_, err = p.env.cvs.CvmanagerV1alpha1().ContainerVersions(m.ns).UpdateStatus(ctx, cv, metav1.UpdateOptions{})
	return err
}

func (p *population) newCV(m member, labels map[string]string) *cvv1.ContainerVersion {
	return &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.ns, Name: m.cv, Labels: map[string]string{"bench": p.prefix}},
		Spec: cvv1.ContainerVersionSpec{
			ImageRepo: p.registryHost() + "/" + m.ref.path, Tag: "env-prod", VersionSyntax: "v[0-9]+",
			PollIntervalSeconds: int32(p.cfg.pollInterval / time.Second), TimeoutSeconds: 600,
			Selector:  &metav1.LabelSelector{MatchLabels: labels},
			Container: cvv1.ContainerSpec{Name: "app"},
			History:   cvv1.HistorySpec{Enabled: p.cfg.history},
		},
	}
}

// refsOf returns up to k refs of the first n members and their members,
// spreading the picks over the whole population.
func (p *population) refsOf(n, k int, skip map[*ref]bool) ([]*ref, map[*ref][]member) {
	byRef := map[*ref][]member{}
	var order []*ref
	for _, m := range p.members[:n] {
		if skip[m.ref] {
			continue
		}
		if _, ok := byRef[m.ref]; !ok {
			order = append(order, m.ref)
		}
		byRef[m.ref] = append(byRef[m.ref], m)
	}
	if k >= len(order) {
		return order, byRef
	}
	picked := make([]*ref, 0, k)
	for i := 0; i < k; i++ {
		picked = append(picked, order[i*len(order)/k])
	}
	return picked, byRef
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// repos are the distinct repository paths the first n CVs follow.
func (p *population) repos(n int) []string {
	seen := map[*ref]bool{}
	var out []string
	for _, m := range p.members[:n] {
		if !seen[m.ref] {
			seen[m.ref] = true
			out = append(out, m.ref.path)
		}
	}
	return out
}
