package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// DefaultJobServiceAccounts are the ServiceAccounts Jobs may run as when
// the controller is not told otherwise: only each namespace's default
// account, which verification Jobs use.
var DefaultJobServiceAccounts = []string{"default"}

// Settings are the controller-wide rules no CV can loosen.
type Settings struct {
	// InlineJobTemplates allows spec.preRollout.jobs[].template. Off by
	// default: a template Job (templateJobName) is created by someone with
	// the right to create Jobs, where its ServiceAccount is reviewed.
	InlineJobTemplates bool
	// JobServiceAccounts are the ServiceAccount names Jobs may run as, in
	// any namespace; "*" allows any. Empty means DefaultJobServiceAccounts.
	JobServiceAccounts []string
	// TrustUnattributedBefore grandfathers CVs without author annotations
	// that were created before it: they are acted on as before these checks
	// existed. Zero refuses every CV without an author.
	TrustUnattributedBefore time.Time
}

// TemplateJobGetter reads a suspended template Job (templateJobName).
type TemplateJobGetter func(ctx context.Context, namespace, name string) (*batchv1.Job, error)

// Authorizer decides whether cvmanager may act for a CV.
type Authorizer struct {
	Settings    Settings
	Checker     *Checker
	TemplateJob TemplateJobGetter
}

// Verdict describes an allowed CV for its Authorized condition.
type Verdict struct {
	// Author is the CV's author; empty for a grandfathered CV.
	Author string
	// Grandfathered: the CV has no author and predates the cutoff.
	Grandfathered bool
}

// Message says why the CV was allowed.
func (v Verdict) Message() string {
	if v.Grandfathered {
		return "no author recorded and created before the controller's --trust-unattributed-created-before: acted on with the controller's rights; re-apply it with `cvmanager cv stamp` to end that"
	}
	return "author " + v.Author + " may do everything this ContainerVersion asks"
}

// Rollout checks everything a rollout of cv does before its first write:
// the Jobs it creates, the ServiceAccounts they run as, the workloads
// (selected now, from the controller's cache) and Services it patches and
// the ConfigMaps it writes. A *Refusal names everything missing; any other
// error is a failed review (retry).
func (a *Authorizer) Rollout(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) (Verdict, error) {
	id, v, err := a.author(cv)
	if err != nil || v.Grandfathered {
		return v, err
	}
	perms, policy, err := a.rolloutPermissions(ctx, cv, workloads)
	if err != nil {
		return v, err
	}
	return v, a.check(ctx, id, perms, policy)
}

// Secrets checks that the author may get every pull Secret cvmanager would
// read for cv.
func (a *Authorizer) Secrets(ctx context.Context, cv *cvv1.ContainerVersion, names []string) (Verdict, error) {
	id, v, err := a.author(cv)
	if err != nil || v.Grandfathered || len(names) == 0 {
		return v, err
	}
	perms := make([]Permission, 0, len(names))
	for _, n := range names {
		perms = append(perms, getSecret(cv.Namespace, n))
	}
	return v, a.check(ctx, id, perms, "")
}

// Job checks one Job just before it is created, on the spec actually built
// (a template Job may have changed since the rollout was checked).
func (a *Authorizer) Job(ctx context.Context, cv *cvv1.ContainerVersion, spec *batchv1.JobSpec) error {
	id, v, err := a.author(cv)
	if err != nil || v.Grandfathered {
		return err
	}
	sa := jobServiceAccount(spec)
	return a.check(ctx, id, []Permission{createJobs(cv.Namespace), ServiceAccountPermission(cv.Namespace, sa)}, a.serviceAccountPolicy(sa))
}

// author reads the CV's author, grandfathers an old unattributed CV, and
// refuses any other CV without one.
func (a *Authorizer) author(cv *cvv1.ContainerVersion) (Identity, Verdict, error) {
	id, ok := AuthorOf(cv)
	if ok {
		return id, Verdict{Author: id.User}, nil
	}
	if grandfathered(cv, a.Settings.TrustUnattributedBefore) {
		return id, Verdict{Grandfathered: true}, nil
	}
	return id, Verdict{}, &Refusal{Policy: fmt.Sprintf("the ContainerVersion records no author (annotation %s); "+
		"the cvmanager admission policy sets it on every create and spec change: re-apply it through `cvmanager cv stamp`", AnnotationAuthor)}
}

func (a *Authorizer) check(ctx context.Context, id Identity, perms []Permission, policy string) error {
	missing, err := a.Checker.Missing(ctx, id, dedup(perms))
	if err != nil {
		return err
	}
	if len(missing) > 0 || policy != "" {
		return &Refusal{Author: id.User, Missing: missing, Policy: policy}
	}
	return nil
}

// rolloutPermissions lists what a rollout of cv does, and which of it the
// controller's settings forbid outright.
func (a *Authorizer) rolloutPermissions(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) ([]Permission, string, error) {
	ns := cv.Namespace
	var perms []Permission
	var policies []string
	accounts, jobPerms, jobPolicies, err := a.jobs(ctx, cv)
	if err != nil {
		return nil, "", err
	}
	perms, policies = append(perms, jobPerms...), append(policies, jobPolicies...)
	for _, sa := range accounts {
		perms = append(perms, ServiceAccountPermission(ns, sa))
		if p := a.serviceAccountPolicy(sa); p != "" {
			policies = append(policies, p)
		}
	}
	for _, w := range workloads {
		group, resource := workloadResource(w.Kind)
		perms = append(perms, patch(group, resource, ns, w.Name()))
	}
	if bg := cv.Spec.Strategy.BlueGreen; bg != nil && cv.Spec.Strategy.Kind == cvv1.StrategyServiceBlueGreen {
		for _, svc := range []string{bg.ServiceName, bg.VerificationServiceName} {
			if svc != "" {
				perms = append(perms, patch("", "services", ns, svc))
			}
		}
	}
	if cv.Spec.Config != nil && cv.Spec.Config.Name != "" {
		perms = append(perms, updateConfigMap(ns, cv.Spec.Config.Name))
	}
	if cv.Spec.History.Name != "" { // "<name>.history"; the default name follows the CV's own
		perms = append(perms, updateConfigMap(ns, cv.Spec.History.Name+".history"))
	}
	return perms, strings.Join(dedupStrings(policies), "; "), nil
}

// jobs lists the ServiceAccounts the CV's Jobs run as and what creating
// them takes.
func (a *Authorizer) jobs(ctx context.Context, cv *cvv1.ContainerVersion) (accounts []string, perms []Permission, policies []string, err error) {
	ns := cv.Namespace
	if len(cv.Spec.Container.Verify) > 0 || len(cv.Spec.Strategy.Verify) > 0 {
		accounts = append(accounts, "default") // verification Jobs name no account
	}
	if cv.Spec.PreRollout != nil {
		for _, j := range cv.Spec.PreRollout.Jobs {
			switch {
			case j.Template != nil:
				if !a.Settings.InlineJobTemplates {
					policies = append(policies, fmt.Sprintf("preRollout job %q has an inline template, which this controller does not allow "+
						"(--allow-inline-job-templates): use templateJobName with a suspended Job", j.Name))
				}
				accounts = append(accounts, jobServiceAccount(&j.Template.Spec))
			case j.TemplateJobName != "":
				perms = append(perms, getJob(ns, j.TemplateJobName))
				sa, err := a.templateAccount(ctx, ns, j.TemplateJobName)
				if err != nil {
					return nil, nil, nil, err
				}
				if sa != "" {
					accounts = append(accounts, sa)
				}
			}
		}
	}
	if len(accounts) > 0 {
		perms = append([]Permission{createJobs(ns)}, perms...)
	}
	return dedupStrings(accounts), perms, policies, nil
}

// templateAccount is the ServiceAccount a template Job's pods run as; ""
// when the Job does not exist (the rollout then fails on its own, and the
// Job check before creation covers one created meanwhile).
func (a *Authorizer) templateAccount(ctx context.Context, ns, name string) (string, error) {
	if a.TemplateJob == nil {
		return "", nil
	}
	job, err := a.TemplateJob(ctx, ns, name)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading template Job %s/%s: %w", ns, name, err)
	}
	return jobServiceAccount(&job.Spec), nil
}

func (a *Authorizer) serviceAccountPolicy(sa string) string {
	allowed := a.Settings.JobServiceAccounts
	if len(allowed) == 0 {
		allowed = DefaultJobServiceAccounts
	}
	if slices.Contains(allowed, "*") || slices.Contains(allowed, sa) {
		return ""
	}
	return fmt.Sprintf("Jobs may not run as ServiceAccount %q on this controller (--job-service-accounts=%s)", sa, strings.Join(allowed, ","))
}

// jobServiceAccount is the account a Job's pods run as.
func jobServiceAccount(spec *batchv1.JobSpec) string {
	pod := spec.Template.Spec
	switch {
	case pod.ServiceAccountName != "":
		return pod.ServiceAccountName
	case pod.DeprecatedServiceAccount != "":
		return pod.DeprecatedServiceAccount
	}
	return "default"
}

func workloadResource(kind workload.Kind) (group, resource string) {
	switch kind {
	case workload.Deployment:
		return "apps", "deployments"
	case workload.StatefulSet:
		return "apps", "statefulsets"
	case workload.DaemonSet:
		return "apps", "daemonsets"
	case workload.CronJob:
		return "batch", "cronjobs"
	}
	return "", strings.ToLower(string(kind)) + "s"
}

func dedup(perms []Permission) []Permission {
	seen := map[string]bool{}
	out := perms[:0:0]
	for _, p := range perms {
		if !seen[p.key()] {
			seen[p.key()] = true
			out = append(out, p)
		}
	}
	return out
}

func dedupStrings(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
