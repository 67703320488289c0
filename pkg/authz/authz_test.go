package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

const ns = "team-a"

// grants answers reviews from a set of "user verb resource name" rules
// ("*" name: any object) and counts the reviews asked.
type grants struct {
	rules   map[string]bool
	reviews int
}

func (g *grants) react(action k8stesting.Action) (bool, runtime.Object, error) {
	r := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview)
	g.reviews++
	a := r.Spec.ResourceAttributes
	res := a.Resource
	if a.Group != "" {
		res += "." + a.Group
	}
	allowed := g.rules[r.Spec.User+" "+a.Verb+" "+res+" "+a.Name] || g.rules[r.Spec.User+" "+a.Verb+" "+res+" *"]
	for _, group := range r.Spec.Groups {
		allowed = allowed || g.rules["group:"+group+" "+a.Verb+" "+res+" *"]
	}
	r.Status.Allowed = allowed
	return true, r, nil
}

func newAuthorizer(t *testing.T, settings Settings, rules ...string) (*Authorizer, *grants, *clocktesting.FakeClock) {
	t.Helper()
	g := &grants{rules: map[string]bool{}}
	for _, r := range rules {
		g.rules[r] = true
	}
	client := fake.NewClientset()
	client.PrependReactor("create", "localsubjectaccessreviews", g.react)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC))
	template := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "migrate-tmpl"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "migrator"}}}}
	getter := func(ctx context.Context, namespace, name string) (*batchv1.Job, error) {
		return fake.NewClientset(template).BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	return &Authorizer{Settings: settings, Checker: NewChecker(client, clk), TemplateJob: getter}, g, clk
}

// cv builds a CV by author with the given edits.
func cv(author string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	c := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web",
		CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec: cvv1.ContainerVersionSpec{Container: cvv1.ContainerSpec{Name: "app"}}}
	if author != "" {
		Stamp(c, Identity{User: author})
	}
	for _, e := range edit {
		e(&c.Spec)
	}
	return c
}

func inlineJob(sa string) func(*cvv1.ContainerVersionSpec) {
	return func(s *cvv1.ContainerVersionSpec) {
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "steal", Template: &batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: sa}}}}}}}
	}
}

func verifyJob(s *cvv1.ContainerVersionSpec) {
	s.Container.Verify = []cvv1.VerifySpec{{Image: "verifier"}}
}

var web = []workload.Workload{{Kind: workload.Deployment, Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}}}

// allRights are what a rollout of every CV below takes.
var allRights = []string{
	"alice create jobs.batch *", "alice impersonate serviceaccounts default", "alice impersonate serviceaccounts migrator",
	"alice patch deployments.apps web", "alice get jobs.batch migrate-tmpl", "alice get secrets regcred",
	"alice patch services live", "alice patch services check", "alice update configmaps version",
}

func TestRolloutRefusalsNameWhatIsMissing(t *testing.T) {
	tests := []struct {
		name        string
		settings    Settings
		cv          *cvv1.ContainerVersion
		workloads   []workload.Workload
		rules       []string
		wantMissing []string
		wantPolicy  string
	}{{
		name: "tenant with only containerversions rights: inline template as another ServiceAccount",
		cv:   cv("tenant", inlineJob("powerful")),
		wantMissing: []string{"create jobs.batch in namespace team-a",
			"impersonate serviceaccounts/powerful in namespace team-a"},
		wantPolicy: `preRollout job "steal" has an inline template, which this controller does not allow`,
	}, {
		name:        "tenant: a verification Job",
		cv:          cv("tenant", verifyJob),
		wantMissing: []string{"create jobs.batch in namespace team-a", "impersonate serviceaccounts/default in namespace team-a"},
	}, {
		name:        "inline templates allowed, ServiceAccount not on the controller's list",
		settings:    Settings{InlineJobTemplates: true},
		cv:          cv("alice", inlineJob("powerful")),
		rules:       append(allRights, "alice impersonate serviceaccounts powerful"),
		wantPolicy:  `Jobs may not run as ServiceAccount "powerful" on this controller (--job-service-accounts=default)`,
		wantMissing: nil,
	}, {
		name:     "template Job: its ServiceAccount must be allowed and impersonable",
		settings: Settings{JobServiceAccounts: []string{"default", "migrator"}},
		cv: cv("bob", func(s *cvv1.ContainerVersionSpec) {
			s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "m", TemplateJobName: "migrate-tmpl"}}}
		}),
		rules:       []string{"bob create jobs.batch *", "bob get jobs.batch migrate-tmpl"},
		wantMissing: []string{"impersonate serviceaccounts/migrator in namespace team-a"},
	}, {
		name:        "a workload the author may not patch",
		cv:          cv("bob"),
		workloads:   web,
		wantMissing: []string{"patch deployments.apps/web in namespace team-a"},
	}, {
		name: "blue-green Services and the config ConfigMap",
		cv: cv("bob", func(s *cvv1.ContainerVersionSpec) {
			s.Strategy = cvv1.StrategySpec{Kind: cvv1.StrategyServiceBlueGreen, BlueGreen: &cvv1.BlueGreenSpec{ServiceName: "live", VerificationServiceName: "check"}}
			s.Config = &cvv1.ConfigSpec{Name: "version", Key: "v"}
		}),
		rules:       []string{"bob patch services live"},
		wantMissing: []string{"patch services/check in namespace team-a", "update configmaps/version in namespace team-a"},
	}, {
		name:       "no author, created after the cutoff",
		settings:   Settings{TrustUnattributedBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		cv:         cv(""),
		wantPolicy: "the ContainerVersion records no author",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := newAuthorizer(t, tc.settings, tc.rules...)
			_, err := a.Rollout(context.Background(), tc.cv, tc.workloads)
			r, ok := AsRefusal(err)
			if !ok {
				t.Fatalf("want a refusal, got %v", err)
			}
			var missing []string
			for _, p := range r.Missing {
				missing = append(missing, p.String())
			}
			if diff := cmp.Diff(tc.wantMissing, missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			if !strings.Contains(r.Policy, tc.wantPolicy) || (tc.wantPolicy == "") != (r.Policy == "") {
				t.Errorf("policy %q, want it to contain %q", r.Policy, tc.wantPolicy)
			}
			if !strings.Contains(err.Error(), "nothing was run or changed") {
				t.Errorf("message does not say nothing happened: %s", err)
			}
		})
	}
}

func TestAuthorWithAllRightsIsAllowedAndCached(t *testing.T) {
	a, g, clk := newAuthorizer(t, Settings{JobServiceAccounts: []string{"default", "migrator"}}, allRights...)
	full := cv("alice", verifyJob, func(s *cvv1.ContainerVersionSpec) {
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "m", TemplateJobName: "migrate-tmpl"}}}
		s.Strategy = cvv1.StrategySpec{Kind: cvv1.StrategyServiceBlueGreen, BlueGreen: &cvv1.BlueGreenSpec{ServiceName: "live", VerificationServiceName: "check"}}
		s.Config = &cvv1.ConfigSpec{Name: "version", Key: "v"}
	})
	ctx := context.Background()
	v, err := a.Rollout(ctx, full, web)
	if err != nil || v.Author != "alice" {
		t.Fatalf("Rollout = %+v, %v; want allowed for alice", v, err)
	}
	// create jobs, get template, 2 accounts, 1 workload, 2 Services, 1
	// ConfigMap: 8 permissions. alice holds those on named objects by name
	// only, so each of their 5 resources is first asked for all its objects
	// (denied, once per resource: the two Services and the two accounts
	// share theirs), then each by name: 8 + 5 reviews.
	const first = 13
	if g.reviews != first {
		t.Errorf("first check: %d reviews, want %d", g.reviews, first)
	}
	for i := 0; i < 100; i++ { // every later step of the rollout, and other CVs of alice's
		if _, err := a.Rollout(ctx, full, web); err != nil {
			t.Fatal(err)
		}
	}
	if g.reviews != first {
		t.Errorf("100 checks within the TTL cost %d more reviews, want 0", g.reviews-first)
	}
	clk.Step(DefaultAllowTTL)
	if _, err := a.Rollout(ctx, full, web); err != nil {
		t.Fatal(err)
	}
	if g.reviews != 2*first {
		t.Errorf("after the TTL: %d reviews in all, want %d (asked again)", g.reviews, 2*first)
	}
}

// TestBroadGrantServesEveryObject: an author who may patch every
// Deployment of the namespace costs one review for a burst of rollouts of
// 100 different Deployments, not one per Deployment.
func TestBroadGrantServesEveryObject(t *testing.T) {
	a, g, _ := newAuthorizer(t, Settings{}, "alice patch deployments.apps *")
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		p := Permission{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: ns, Name: fmt.Sprintf("web-%d", i)}
		if ok, err := a.Checker.Allowed(ctx, Identity{User: "alice"}, p); err != nil || !ok {
			t.Fatalf("patch %s: %v %v, want allowed", p.Name, ok, err)
		}
	}
	if g.reviews != 1 {
		t.Errorf("%d reviews for 100 Deployments under one broad grant, want 1", g.reviews)
	}
	named := Permission{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: ns, Name: "web"}
	if ok, _ := a.Checker.Allowed(ctx, Identity{User: "bob"}, named); ok {
		t.Error("bob holds no grant: allowed")
	}
}

func TestDenialIsReaskedSoonerThanAGrant(t *testing.T) {
	a, g, clk := newAuthorizer(t, Settings{})
	ctx := context.Background()
	p := createJobs(ns)
	if ok, _ := a.Checker.Allowed(ctx, Identity{User: "bob"}, p); ok {
		t.Fatal("bob has no rights")
	}
	g.rules["bob create jobs.batch *"] = true // granted
	clk.Step(DefaultDenyTTL - time.Second)
	if ok, _ := a.Checker.Allowed(ctx, Identity{User: "bob"}, p); ok {
		t.Fatal("a denial must be cached for the deny TTL")
	}
	clk.Step(time.Second)
	if ok, _ := a.Checker.Allowed(ctx, Identity{User: "bob"}, p); !ok {
		t.Fatal("after the deny TTL the grant must be seen")
	}
	if g.reviews != 2 {
		t.Errorf("%d reviews, want 2", g.reviews)
	}
}

func TestGroupsCountAndOrderDoesNotSplitTheCache(t *testing.T) {
	a, g, _ := newAuthorizer(t, Settings{}, "group:team-a-deployers patch deployments.apps *")
	ctx := context.Background()
	c := cv("carol")
	Stamp(c, Identity{User: "carol", Groups: []string{"team-a-deployers", "system:authenticated"}})
	if _, err := a.Rollout(ctx, c, web); err != nil {
		t.Fatalf("a right granted to the author's group: %v", err)
	}
	c.Annotations[AnnotationGroups] = "system:authenticated, team-a-deployers"
	if _, err := a.Rollout(ctx, c, web); err != nil {
		t.Fatal(err)
	}
	if g.reviews != 1 {
		t.Errorf("%d reviews, want 1", g.reviews)
	}
}

func TestUnattributedCVs(t *testing.T) {
	cutoff := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	a, g, _ := newAuthorizer(t, Settings{TrustUnattributedBefore: cutoff})
	ctx := context.Background()
	old := cv("", inlineJob("powerful"), verifyJob)
	v, err := a.Rollout(ctx, old, web)
	if err != nil || !v.Grandfathered {
		t.Fatalf("a CV created before the cutoff: %+v, %v; want grandfathered", v, err)
	}
	if err := a.Job(ctx, old, &old.Spec.PreRollout.Jobs[0].Template.Spec); err != nil {
		t.Errorf("a grandfathered CV's Job: %v", err)
	}
	if g.reviews != 0 {
		t.Errorf("%d reviews for a grandfathered CV, want 0", g.reviews)
	}
	young := cv("")
	young.CreationTimestamp = metav1.NewTime(cutoff.Add(time.Second))
	if _, err := a.Secrets(ctx, young, nil); err == nil {
		t.Error("a CV without author created after the cutoff must be refused")
	}
	a.Settings.TrustUnattributedBefore = time.Time{}
	if _, err := a.Rollout(ctx, old, nil); err == nil {
		t.Error("without a cutoff every CV without author is refused")
	}
}

func TestJobChecksTheSpecActuallyBuilt(t *testing.T) {
	a, _, _ := newAuthorizer(t, Settings{}, "alice create jobs.batch *", "alice impersonate serviceaccounts default")
	ctx := context.Background()
	c := cv("alice")
	spec := &batchv1.JobSpec{}
	if err := a.Job(ctx, c, spec); err != nil {
		t.Fatalf("default account: %v", err)
	}
	spec.Template.Spec.DeprecatedServiceAccount = "powerful"
	err := a.Job(ctx, c, spec)
	r, ok := AsRefusal(err)
	if !ok || len(r.Missing) != 1 || r.Missing[0].Name != "powerful" || !strings.Contains(r.Policy, "powerful") {
		t.Errorf("a Job as another account: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	a, _, _ := newAuthorizer(t, Settings{}, "alice get secrets regcred")
	ctx := context.Background()
	if _, err := a.Secrets(ctx, cv("alice"), []string{"regcred"}); err != nil {
		t.Errorf("readable Secret: %v", err)
	}
	_, err := a.Secrets(ctx, cv("alice"), []string{"regcred", "prod-admin"})
	if err == nil || !strings.Contains(err.Error(), "author alice may not get secrets/prod-admin in namespace team-a") {
		t.Errorf("unreadable Secret: %v", err)
	}
}

func TestAuthorOf(t *testing.T) {
	c := cv("")
	if _, ok := AuthorOf(c); ok {
		t.Error("no annotation, no author")
	}
	c.Annotations = map[string]string{AnnotationAuthor: "system:serviceaccount:team-a:ci", AnnotationGroups: "a, b,,a"}
	id, ok := AuthorOf(c)
	want := Identity{User: "system:serviceaccount:team-a:ci", Groups: []string{"a", "b"}}
	if diff := cmp.Diff(want, id); !ok || diff != "" {
		t.Errorf("AuthorOf (-want +got):\n%s", diff)
	}
}
