package authz

import (
	"errors"
	"fmt"
	"strings"
)

// Permission is one RBAC question about a namespaced resource, as a
// LocalSubjectAccessReview asks it.
type Permission struct {
	Verb      string
	Group     string // "" for the core API
	Resource  string
	Namespace string
	Name      string // "" for any object (create)
}

// String reads like `kubectl auth can-i`: "create jobs.batch in namespace
// team-a", "patch deployments.apps/web in namespace team-a".
func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	if p.Name != "" {
		res += "/" + p.Name
	}
	return fmt.Sprintf("%s %s in namespace %s", p.Verb, res, p.Namespace)
}

func (p Permission) key() string {
	return strings.Join([]string{p.Verb, p.Group, p.Resource, p.Namespace, p.Name}, "\x00")
}

// Permissions for the things cvmanager does on a CV author's behalf.
func createJobs(ns string) Permission {
	return Permission{Verb: "create", Group: "batch", Resource: "jobs", Namespace: ns}
}

func getJob(ns, name string) Permission {
	return Permission{Verb: "get", Group: "batch", Resource: "jobs", Namespace: ns, Name: name}
}

// ServiceAccountPermission is what "may use ServiceAccount name" means
// here: impersonate it. RBAC has no "use" verb for ServiceAccounts, and
// Kubernetes itself lets anyone who may create a pod run it as any
// ServiceAccount of the namespace, which is exactly the escalation a CV
// must not offer. A pod running as an account holds that account's token,
// so whoever makes such a pod run can act as the account: the same power as
// impersonation, which RBAC can grant per account (resourceNames).
func ServiceAccountPermission(ns, name string) Permission {
	return Permission{Verb: "impersonate", Resource: "serviceaccounts", Namespace: ns, Name: name}
}

func getSecret(ns, name string) Permission {
	return Permission{Verb: "get", Resource: "secrets", Namespace: ns, Name: name}
}

func updateConfigMap(ns, name string) Permission {
	return Permission{Verb: "update", Resource: "configmaps", Namespace: ns, Name: name}
}

func patch(group, resource, ns, name string) Permission {
	return Permission{Verb: "patch", Group: group, Resource: resource, Namespace: ns, Name: name}
}

// Refusal is why cvmanager will not act for a CV: the permissions its
// author lacks, or a controller-wide setting that forbids what it asks.
// Nothing was run or changed when it is returned.
type Refusal struct {
	// Author is the CV's author ("" when the CV names none).
	Author string
	// Missing are the permissions the reviews denied, in check order.
	Missing []Permission
	// Policy says which controller setting refuses the CV, when one does.
	Policy string
}

// Error names the author and every missing permission.
func (r *Refusal) Error() string {
	var parts []string
	if r.Policy != "" {
		parts = append(parts, r.Policy)
	}
	if len(r.Missing) > 0 {
		missing := make([]string, len(r.Missing))
		for i, p := range r.Missing {
			missing[i] = p.String()
		}
		parts = append(parts, fmt.Sprintf("author %s may not %s", r.Author, strings.Join(missing, "; nor ")))
	}
	return strings.Join(parts, "; ") + " (cvmanager acts only within its author's rights: nothing was run or changed)"
}

// AsRefusal finds a Refusal in err's chain.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// ReasonForbidden is the condition and Event reason of a refusal.
const ReasonForbidden = "Forbidden"
