// Package authz bounds what a ContainerVersion can make cvmanager do by what
// its author could do alone.
//
// A CV is a request made by its author. cvmanager acts with its own, much
// wider rights (it creates Jobs, patches workloads, reads pull Secrets in
// every namespace it watches), so before it acts for a CV it asks the API
// server, with LocalSubjectAccessReviews, whether the author may do each of
// those things in the CV's namespace:
//
//   - create Jobs, when the CV has verification or migration Jobs;
//   - impersonate the ServiceAccount each Job's pods run as (see
//     ServiceAccountPermission for why that verb);
//   - get a suspended template Job the CV copies;
//   - patch every workload the selector matches (and, for blue-green, the
//     Services it switches);
//   - update the ConfigMaps the CV names (spec.config, spec.history.name);
//   - get every pull Secret cvmanager would read for the CV.
//
// The author is read from annotations (AnnotationAuthor, AnnotationGroups)
// that a ValidatingAdmissionPolicy shipped with the CRD keeps equal to the
// identity of whoever last wrote the CV's spec, so nobody can claim someone
// else's identity (docs/security.md).
//
// Every permission of a rollout is checked before its first write, and a
// refusal names every missing permission (Refusal). Answers are cached
// briefly per (author, permission), so 10,000 CVs that share a few authors
// and a few Secrets cost a few reviews per TTL, not one per CV and poll.
package authz
