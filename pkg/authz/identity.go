package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Annotations recording who wrote a CV's spec. The admission policy in
// deploy/crds (and the chart) refuses a create, or an update that changes
// the spec or these annotations, unless AnnotationAuthor equals the
// requesting user and every group in AnnotationGroups is one of theirs.
// `cvmanager cv stamp` fills them in from the API server's SelfSubjectReview.
const (
	AnnotationAuthor = "cvmanager.dev/author"
	// AnnotationGroups is a comma-separated subset of the author's groups.
	// Fewer groups can only mean fewer RBAC rights, so a subset is safe;
	// naming them lets group-bound RoleBindings count in the reviews.
	AnnotationGroups = "cvmanager.dev/author-groups"
)

// Identity is the user a CV acts for, as the reviews are asked about.
type Identity struct {
	User   string
	Groups []string
}

// String is the user name, for messages.
func (i Identity) String() string { return i.User }

// key identifies the identity in the cache; groups are sorted so their
// order does not split the cache.
func (i Identity) key() string {
	groups := slices.Clone(i.Groups)
	slices.Sort(groups)
	return i.User + "\x00" + strings.Join(groups, ",")
}

// AuthorOf reads a CV's author from its annotations; ok is false when the
// CV carries none (created before the admission policy was installed).
func AuthorOf(cv *cvv1.ContainerVersion) (Identity, bool) {
	user := strings.TrimSpace(cv.Annotations[AnnotationAuthor])
	if user == "" {
		return Identity{}, false
	}
	id := Identity{User: user}
	for _, g := range strings.Split(cv.Annotations[AnnotationGroups], ",") {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(id.Groups, g) {
			id.Groups = append(id.Groups, g)
		}
	}
	return id, true
}

// Stamp sets the author annotations of cv to id (what `cvmanager cv stamp`
// and the test builders do before a create or update).
func Stamp(cv *cvv1.ContainerVersion, id Identity) {
	if cv.Annotations == nil {
		cv.Annotations = map[string]string{}
	}
	cv.Annotations[AnnotationAuthor] = id.User
	if len(id.Groups) == 0 {
		delete(cv.Annotations, AnnotationGroups)
		return
	}
	cv.Annotations[AnnotationGroups] = strings.Join(id.Groups, ",")
}

// grandfathered reports whether a CV without author annotations is still
// acted on as before this package existed: it was created before cutoff
// (the upgrade), so its spec predates the admission policy, and nothing
// has changed it since (any later change of the spec must carry an author).
func grandfathered(cv *cvv1.ContainerVersion, cutoff time.Time) bool {
	return !cutoff.IsZero() && cv.CreationTimestamp.Time.Before(cutoff)
}

// WhoAmI asks the API server who the client is (SelfSubjectReview, the
// API behind `kubectl auth whoami`): the identity the admission policy will
// compare the author annotations with.
func WhoAmI(ctx context.Context, kube kubernetes.Interface) (Identity, error) {
	review, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("asking the API server who you are (SelfSubjectReview): %w", err)
	}
	u := review.Status.UserInfo
	return Identity{User: u.Username, Groups: u.Groups}, nil
}
