package tenancy

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// TestTenantBorrowsNoRights is the attack of issue 19 and its variants, in
// both RBAC modes of the chart: ServiceAccount "tenant" may only manage
// ContainerVersions. Each of its CVs is refused with a condition and an
// Event naming what is missing; no Job is created, the Deployment it
// selects is not changed and the Secret it names is not used. Beside it,
// "deployer", granted the self-service role of docs/security.md, gets the
// same rollout (verification Job, then the image patch) as before.
func TestTenantBorrowsNoRights(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			start := time.Now()
			e := e2eenv.New(t)
			installAuthorPolicy(e)
			reg := e2eenv.NewRegistry(t)
			repo := reg.Repo("team/web")
			reg.MustPush(t, "team/web", "v1", "env-prod")
			controllerCfg := installChart(e, m)
			arrange(e, repo, reg.Repo("team/app"))
			_, tenantCVs := account(e, "tenant", cvRights)
			_, deployerCVs := account(e, "deployer", selfService...)
			tenant, deployer := serviceAccountUser(e.NS, "tenant"), serviceAccountUser(e.NS, "deployer")

			assertIdentityCannotBeClaimed(e, tenantCVs, tenant)
			tenantCV := func(name string, edit ...func(*cvv1.ContainerVersionSpec)) {
				cv := gen.NewCV(e.NS, name, repo, edit...)
				cv.Spec.Selector = &metav1.LabelSelector{MatchLabels: gen.LabelsFor("web")}
				createAs(e, tenantCVs, tenant, cv)
			}
			tenantCV("inline", func(s *cvv1.ContainerVersionSpec) {
				s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "steal", Template: &batchv1.JobTemplateSpec{
					Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "powerful",
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "app", Image: "busybox", Command: []string{"cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"}}}}}}}}}}
			})
			tenantCV("verify", func(s *cvv1.ContainerVersionSpec) { s.Container.Verify = []cvv1.VerifySpec{{Image: "verifier:ok"}} })
			tenantCV("tmpl", func(s *cvv1.ContainerVersionSpec) {
				s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{{Name: "m", TemplateJobName: "migrate-tmpl"}}}
			})
			tenantCV("selector")
			tenantCV("secret", func(s *cvv1.ContainerVersionSpec) {
				s.ImagePullSecrets = []cvv1.LocalObjectReference{{Name: "regcred"}}
			})

			app := gen.NewCV(e.NS, "app", reg.Repo("team/app"), func(s *cvv1.ContainerVersionSpec) {
				s.Container.Verify = []cvv1.VerifySpec{{Image: "verifier:ok"}}
			})
			d1 := reg.MustPush(t, "team/app", "v1", "env-prod")
			createAs(e, deployerCVs, deployer, app)

			p := startController(e, controllerCfg, reg)
			ns := "in namespace " + e.NS
			waitRefused(e, "inline", "author "+tenant.User+" may not", "inline template", "create jobs.batch "+ns,
				"impersonate serviceaccounts/powerful "+ns, `Jobs may not run as ServiceAccount "powerful"`, "patch deployments.apps/web "+ns,
				"nothing was run or changed")
			waitRefused(e, "verify", "create jobs.batch "+ns, "impersonate serviceaccounts/default "+ns)
			waitRefused(e, "tmpl", "get jobs.batch/migrate-tmpl "+ns, "impersonate serviceaccounts/powerful "+ns)
			waitRefused(e, "selector", "not rolling out v1", "patch deployments.apps/web "+ns)
			waitRefused(e, "secret", "not polling", "get secrets/regcred "+ns)

			cv := e.WaitStatus("app", cvv1.StatusSuccess, d1, 60*time.Second)
			e2eenv.AssertCondition(t, cv, "Authorized", metav1.ConditionTrue)
			if got, want := e.DeploymentImage("app"), gen.Pinned(reg.Repo("team/app"), "v1", d1); got != want {
				t.Errorf("deployer's Deployment runs %s, want %s", got, want)
			}
			// The tenant's CVs were refused before the deployer's rollout
			// finished: still nothing of theirs happened.
			if gen := e.DeploymentGeneration("web"); gen != 1 || !strings.HasSuffix(e.DeploymentImage("web"), ":old") {
				t.Errorf("the tenant changed Deployment web: generation %d, image %s", gen, e.DeploymentImage("web"))
			}
			assertOnlyJobs(e, "migrate-tmpl", "app-verify-")
			for _, name := range []string{"inline", "verify", "tmpl", "selector", "secret"} {
				if got := e.GetCV(name); got.Status.SuccessDigest != "" || got.Status.Rollout != nil {
					t.Errorf("tenant CV %s rolled out: %+v", name, got.Status)
				}
			}
			t.Logf("mode %s: %s; %s", m.name, time.Since(start).Round(100*time.Millisecond), p.authzMetrics())
		})
	}
}

// selfService is the role docs/security.md gives a team: its own CVs, the
// Jobs they run (as the namespace's default account only), the patches
// of its workloads. It is what "deployer" holds.
var selfService = []rbacv1.PolicyRule{
	cvRights,
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch", "create"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, ResourceNames: []string{"default"}, Verbs: []string{"impersonate"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"app"}, Verbs: []string{"get", "patch"}},
}

// arrange creates, as admin, what the tenant would like to abuse: the
// Deployment web it may not patch, the Secret regcred it may not read, the
// ServiceAccount powerful, a suspended template Job running as powerful;
// and the deployer's Deployment app.
func arrange(e *e2eenv.Env, repo, appRepo string) {
	e.T.Helper()
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "app", "app", appRepo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
	_, err = e.Kube.CoreV1().ServiceAccounts(e.NS).Create(e.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "powerful"}}, metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
	_, err = e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"127.0.0.1":{"auth":"cGxhbnRlZDpzZWNyZXQ="}}}`)}}, metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
	tmpl := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate-tmpl"}, Spec: batchv1.JobSpec{Suspend: ptr.To(true),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "powerful", RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}}}
	_, err = e.Kube.BatchV1().Jobs(e.NS).Create(e.Ctx, tmpl, metav1.CreateOptions{})
	e2eenv.Must(e.T, err)
}

// assertIdentityCannotBeClaimed: the admission policy refuses a CV with no
// author, or with another user's name, or a group the writer is not in.
func assertIdentityCannotBeClaimed(e *e2eenv.Env, cvs versioned.Interface, self authz.Identity) {
	e.T.Helper()
	cases := map[string]struct {
		id   *authz.Identity
		want string
	}{
		"no author":            {nil, "set annotation cvmanager.dev/author to your user name \"" + self.User + "\""},
		"another user":         {&authz.Identity{User: "admin"}, "set annotation cvmanager.dev/author"},
		"a group not its own":  {&authz.Identity{User: self.User, Groups: []string{"system:masters"}}, "may name only groups you are in"},
		"itself, fewer groups": {&authz.Identity{User: self.User, Groups: self.Groups[:1]}, ""},
	}
	for name, tc := range cases {
		cv := gen.NewCV(e.NS, "claim", "127.0.0.1:1/claim")
		if tc.id != nil {
			authz.Stamp(cv, *tc.id)
		}
		_, err := cvs.CvmanagerV1alpha1().ContainerVersions(e.NS).Create(e.Ctx, cv, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case tc.want == "" && err != nil:
			e.T.Errorf("%s: refused: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			e.T.Errorf("%s: want a refusal saying %q, got %v", name, tc.want, err)
		}
	}
}

// assertOnlyJobs checks that every Job of the namespace is one of want (by
// name prefix): the tenant got none.
func assertOnlyJobs(e *e2eenv.Env, want ...string) {
	e.T.Helper()
	jobs, err := e.Kube.BatchV1().Jobs(e.NS).List(e.Ctx, metav1.ListOptions{})
	e2eenv.Must(e.T, err)
	for _, j := range jobs.Items {
		ok := false
		for _, w := range want {
			ok = ok || strings.HasPrefix(j.Name, w)
		}
		if !ok {
			e.T.Errorf("Job %s was created (service account %q): the tenant borrowed cvmanager's rights", j.Name, j.Spec.Template.Spec.ServiceAccountName)
		}
	}
}
