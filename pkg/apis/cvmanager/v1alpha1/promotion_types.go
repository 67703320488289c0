package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons of the ReleaseBlocked condition (and of promotion refusals) that
// the fleet features add.
const (
	// ReasonMinAge: the new image is younger than spec.policy.minAge.
	ReasonMinAge = "MinAge"
	// ReasonPlatformMissing: the image index lacks a platform the
	// workload's nodes run.
	ReasonPlatformMissing = "PlatformMissing"
	// ReasonSourceUnreachable: the promotion source cannot be read.
	ReasonSourceUnreachable = "SourceUnreachable"
	// ReasonSoaking: the source's version has not been Success for minSoakSeconds.
	ReasonSoaking = "Soaking"
	// ReasonSourceFailing: the source is not Success.
	ReasonSourceFailing = "SourceFailing"
	// ReasonSourceDrifted: the source's workloads run another image.
	ReasonSourceDrifted = "SourceDrifted"
	// ReasonSourceUnverified: the source's image carries no valid signature.
	ReasonSourceUnverified = "SourceUnverified"
)

// PromotionSpec says where a ContainerVersion takes its versions from
// besides its own tag.
type PromotionSpec struct {
	// From is a ContainerVersion in another cluster whose last successful
	// version this one takes once it has soaked there.
	// +required
	From PromotionSource `json:"from"`
}

// PromotionSource names a ContainerVersion in another cluster and how to
// reach it.
type PromotionSource struct {
	// ClusterSecretRef names a Secret in this CV's namespace holding a
	// kubeconfig for the source cluster under Key, the way Argo CD keeps
	// cluster credentials. Reading it is checked against the CV author's
	// rights like every Secret the CV names.
	// +required
	ClusterSecretRef SecretKeyReference `json:"clusterSecretRef"`
	// Namespace of the source ContainerVersion.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the source ContainerVersion.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// MinSoakSeconds is how long the source must have run a version with
	// status Success, not drifted, before this CV takes it. A pointer, so
	// that 0 (take it as soon as the source succeeds) survives a typed
	// client: with a plain int32, omitempty dropped the 0 and the API
	// server defaulted it to an hour, e.g. on `state import`.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2592000
	MinSoakSeconds *int32 `json:"minSoakSeconds,omitempty"`
}

// SecretKeyReference names a key of a Secret in the CV's namespace.
type SecretKeyReference struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key holding the kubeconfig.
	// +optional
	// +kubebuilder:default=kubeconfig
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// PromotionStatus is what the controller last read of the promotion source.
type PromotionStatus struct {
	// SourceVersion is the source's last successful version.
	// +optional
	SourceVersion string `json:"sourceVersion,omitempty"`
	// SourceDigest is the digest of SourceVersion.
	// +optional
	SourceDigest string `json:"sourceDigest,omitempty"`
	// SourceSuccessSince is when the source reached Success on SourceDigest.
	// +optional
	SourceSuccessSince *metav1.Time `json:"sourceSuccessSince,omitempty"`
	// LastRead is when the source was last read successfully.
	// +optional
	LastRead *metav1.Time `json:"lastRead,omitempty"`
}
