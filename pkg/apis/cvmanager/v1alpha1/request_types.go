package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Request actions.
const (
	// RequestPoll asks the leader to poll the CV's tag now.
	RequestPoll = "Poll"
	// RequestClearFailed asks the leader to forget status.failedDigest, then poll.
	RequestClearFailed = "ClearFailed"
)

// ContainerVersionRequest asks the leading controller to act on one CV now:
// poll its tag (a trigger, a registry webhook, a release) or forget its failed
// digest. Any replica (and `cvmanager release`) creates one; the leader acts
// on it and deletes it.
//
// Why an object of its own: a CV has two writers, its users (spec, metadata)
// and the controller (status). A request written onto the CV moved its
// resourceVersion under the controller's own status writes; a request object
// survives a leader change just as well (it lives in the API server) and
// leaves the CV alone.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=cvreq,categories=cvmanager
// +kubebuilder:printcolumn:name="CV",type=string,JSONPath=`.spec.containerVersion`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ContainerVersionRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ContainerVersionRequestSpec `json:"spec"`
}

// ContainerVersionRequestSpec names the CV and what to do.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a request is immutable: create a new one"
type ContainerVersionRequestSpec struct {
	// ContainerVersion is the name of the CV, in the request's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ContainerVersion string `json:"containerVersion"`
	// Action is Poll or ClearFailed.
	// +kubebuilder:validation:Enum=Poll;ClearFailed
	Action string `json:"action"`
	// Trigger names the cause for the history record: trigger, webhook,
	// release, clear-failed.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Trigger string `json:"trigger,omitempty"`
	// Digest is, for Poll, the digest a push event announced, when it named
	// one: the leader re-checks briefly until the registry serves it. For
	// ClearFailed, it is the failed digest to forget (status.failedDigest
	// when the request was made); the request clears nothing once the CV's
	// failure is another. Empty on ClearFailed: forget whatever failed.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Digest string `json:"digest,omitempty"`
}

// ContainerVersionRequestList is a list of requests.
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ContainerVersionRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []ContainerVersionRequest `json:"items"`
}

// AnnotationFailedAt, on a ClearFailed request, is the time of the failure
// it clears (the CV's status.currStatusTime when the request was made, RFC
// 3339): with spec.digest it tells this failure from a later failure of the
// same digest, which a request acted on once must not clear again.
const AnnotationFailedAt = "cvmanager.dev/failed-at"

// AnnotationImported marks a CV created by `cvmanager state import`:
// "<version>@<digest>", the last-known-good version of the exported
// cluster. The importer writes spec and metadata only; the controller,
// the status's one writer, restores that version first (trigger import)
// when it finds the mark on a CV with no status yet.
const AnnotationImported = "cvmanager.dev/imported"
