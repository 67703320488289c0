package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Write-back modes (WriteBackSpec.Mode).
const (
	// WriteBackCommit pushes the edit straight to the branch.
	WriteBackCommit = "Commit"
	// WriteBackPullRequest pushes the edit to the branch
	// cvmanager/<namespace>-<name> and opens (or updates) one pull or merge
	// request per CV against the branch.
	WriteBackPullRequest = "PullRequest"
)

// Write-back target kinds (WriteBackTarget.Kind).
const (
	// TargetKustomize edits the images: entry of a kustomization.yaml.
	TargetKustomize = "Kustomize"
	// TargetYAMLPath sets fields named by dotted paths in a YAML file.
	TargetYAMLPath = "YAMLPath"
	// TargetSetter sets the values marked with a setter comment.
	TargetSetter = "Setter"
)

// Write-back states (WriteBackStatus.State).
const (
	// WriteBackWritten: the rollout's image is in git (committed, or in the
	// pull request's branch).
	WriteBackWritten = "Written"
	// WriteBackPending: the write was asked for and has not finished yet.
	WriteBackPending = "Pending"
	// WriteBackFailed: the last attempt failed; Reason says why.
	WriteBackFailed = "Failed"
)

// WriteBackSpec records in a git repository the image a rollout verified:
// after a rollout finishes Success (or a rollback restores a digest), the
// targets are edited to the new image and committed. A failed rollout
// writes nothing, so git only ever holds images that passed.
//
// +kubebuilder:validation:XValidation:rule="!has(self.pullRequest) || (has(self.mode) && self.mode == 'PullRequest')",message="writeBack.pullRequest is only for mode PullRequest"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'PullRequest' || has(self.pullRequest)",message="writeBack.mode PullRequest needs writeBack.pullRequest.provider (GitHub or GitLab)"
// +kubebuilder:validation:XValidation:rule="!has(self.url) || !self.url.startsWith('http') || !has(self.secretRef) || !has(self.secretRef.knownHostsKey) && !has(self.secretRef.identityKey)",message="an https repository takes token or username/password keys, not identityKey/knownHostsKey"
// +kubebuilder:validation:XValidation:rule="!has(self.url) || self.url.startsWith('http') || (has(self.secretRef) && has(self.secretRef.identityKey) && has(self.secretRef.knownHostsKey))",message="an ssh repository needs secretRef with identityKey and knownHostsKey"
type WriteBackSpec struct {
	// URL of the repository: https://host/owner/repo.git or
	// ssh://git@host[:port]/owner/repo.git (or the scp form git@host:owner/repo.git).
	// Unset: the namespace's default repository (URL, and branch and
	// secretRef unless set here) from the ConfigMap cvmanager-defaults,
	// key writeBack (see docs/gitops.md).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(https?://[^/@ ]+/[^ ]+|ssh://[^/ ]+/[^ ]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^ ]+)$')",message="writeBack.url must be an https://, http://, ssh:// or user@host:path repository URL"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^https?://[^/]*@')",message="writeBack.url must not embed credentials; put them in the Secret named by writeBack.secretRef"
	URL string `json:"url,omitempty"`

	// Branch the targets are read from and written to (in PullRequest
	// mode: the base of the pull request). Unset: the namespace default's
	// branch when the URL is the default's too, else main.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9._/-]+$') && !self.startsWith('/') && !self.endsWith('/') && !self.contains('..') && !self.endsWith('.lock')",message="writeBack.branch must be a valid git branch name"
	Branch string `json:"branch,omitempty"`

	// SecretRef names the Secret in the CV's namespace with the credentials.
	// +optional
	SecretRef *GitSecretRef `json:"secretRef,omitempty"`

	// Targets are the files to edit, at least one.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Targets []WriteBackTarget `json:"targets"`

	// Mode is Commit (push to Branch, the default) or PullRequest.
	// +optional
	// +kubebuilder:default=Commit
	// +kubebuilder:validation:Enum=Commit;PullRequest
	Mode string `json:"mode,omitempty"`

	// PullRequest says where to open the pull or merge request.
	// +optional
	PullRequest *PullRequestSpec `json:"pullRequest,omitempty"`

	// MessageTemplate is a Go text/template for the commit message (and the
	// pull request's title and body) over the rollout: .CV, .Namespace,
	// .Name, .ImageRepo, .Version, .Digest, .FromVersion, .RolledBack,
	// .Signer, .RolloutID, .Provenance.Revision, .Provenance.Source,
	// .Provenance.CILink. A trailer "Cvmanager-Rollout: <id>" is always
	// appended: it makes a replayed write a no-op and finds the commit again.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	MessageTemplate string `json:"messageTemplate,omitempty"`

	// Author of the commits; defaults to the controller's
	// (cvmanager <cvmanager@localhost>).
	// +optional
	Author *GitAuthor `json:"author,omitempty"`
}

// GitSecretRef names a Secret and the keys in it that hold git credentials.
// For HTTPS: TokenKey (a token sent as the password, also used for the
// pull request API) or UsernameKey+PasswordKey. For SSH: IdentityKey (a
// private key in OpenSSH or PEM form) and KnownHostsKey (known_hosts lines;
// the host key is always checked).
//
// +kubebuilder:validation:XValidation:rule="!has(self.passwordKey) || has(self.usernameKey)",message="secretRef.passwordKey needs secretRef.usernameKey"
// +kubebuilder:validation:XValidation:rule="!has(self.identityKey) || has(self.knownHostsKey)",message="secretRef.identityKey needs secretRef.knownHostsKey: the host key is always checked"
type GitSecretRef struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// TokenKey is the key holding an access token.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TokenKey string `json:"tokenKey,omitempty"`
	// UsernameKey is the key holding the HTTPS user name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	UsernameKey string `json:"usernameKey,omitempty"`
	// PasswordKey is the key holding the HTTPS password.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PasswordKey string `json:"passwordKey,omitempty"`
	// IdentityKey is the key holding the SSH private key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	IdentityKey string `json:"identityKey,omitempty"`
	// KnownHostsKey is the key holding known_hosts lines for the SSH host.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	KnownHostsKey string `json:"knownHostsKey,omitempty"`
	// CAKey is the key holding PEM CA certificates that sign the HTTPS
	// server's certificate (and the forge API's), for a private CA; they
	// are trusted besides the system roots.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CAKey string `json:"caKey,omitempty"`
}

// WriteBackTarget is one file to edit and how.
//
// +kubebuilder:validation:XValidation:rule="self.kind != 'YAMLPath' || (has(self.yamlPaths) && (has(self.yamlPaths.image) || has(self.yamlPaths.name) || has(self.yamlPaths.tag) || has(self.yamlPaths.digest)))",message="a YAMLPath target needs yamlPaths with at least one of image, name, tag, digest"
// +kubebuilder:validation:XValidation:rule="self.kind == 'YAMLPath' || !has(self.yamlPaths)",message="yamlPaths is only for kind YAMLPath"
// +kubebuilder:validation:XValidation:rule="self.kind == 'Kustomize' || !has(self.imageName)",message="imageName is only for kind Kustomize"
// +kubebuilder:validation:XValidation:rule="self.kind == 'Setter' || !has(self.setter)",message="setter is only for kind Setter"
type WriteBackTarget struct {
	// Path of the file in the repository, relative to its root.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.contains('..')",message="target path must be relative to the repository root, without '..'"
	Path string `json:"path"`

	// Kind is Kustomize, YAMLPath or Setter.
	// +required
	// +kubebuilder:validation:Enum=Kustomize;YAMLPath;Setter
	Kind string `json:"kind"`

	// ImageName (Kustomize) is the images[].name entry to edit; defaults to
	// spec.imageRepo. The entry is added when missing; newName is set when
	// ImageName differs from spec.imageRepo.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	ImageName string `json:"imageName,omitempty"`

	// YAMLPaths (YAMLPath) are dotted paths to the fields to set, e.g.
	// image.tag; a list element is chosen by index (containers[0]) or by a
	// field (containers[name=app]).
	// +optional
	YAMLPaths *YAMLPaths `json:"yamlPaths,omitempty"`

	// Setter (Setter) is the setter name in the marker comments; defaults
	// to <namespace>:<name> of the CV. A value followed by
	// `# {"$cvmanager": "<setter>"}` gets the whole image reference
	// (repo:version@digest); the suffixes :name, :tag and :digest set only
	// that part. Flux's `{"$imagepolicy": ...}` markers are read the same way.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Setter string `json:"setter,omitempty"`
}

// YAMLPaths name the fields a YAMLPath target sets.
type YAMLPaths struct {
	// Image gets the whole reference repo:version@digest.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`
	// Name gets the repository (spec.imageRepo).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Name string `json:"name,omitempty"`
	// Tag gets the version.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Tag string `json:"tag,omitempty"`
	// Digest gets the digest (sha256:…).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Digest string `json:"digest,omitempty"`
}

// PullRequestSpec says which forge API opens the pull or merge request.
type PullRequestSpec struct {
	// Provider is GitHub or GitLab.
	// +required
	// +kubebuilder:validation:Enum=GitHub;GitLab
	Provider string `json:"provider"`
	// APIURL is the forge's REST API base URL. Left out: for GitLab
	// <scheme>://<host>/api/v4, for GitHub <scheme>://api.<host>; set it for
	// GitHub Enterprise (<scheme>://<host>/api/v3) and self-hosted setups.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/@]+(/.*)?$')",message="pullRequest.apiURL must be an http(s) URL without credentials"
	APIURL string `json:"apiURL,omitempty"`
}

// GitAuthor is a commit author.
type GitAuthor struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=256
	Email string `json:"email"`
}

// WriteBackStatus is the outcome of the last write-back of the CV.
type WriteBackStatus struct {
	// State is Written, Pending or Failed.
	// +optional
	State string `json:"state,omitempty"`
	// RolloutID is the rollout whose image was (to be) written.
	// +optional
	RolloutID string `json:"rolloutID,omitempty"`
	// Version written.
	// +optional
	Version string `json:"version,omitempty"`
	// Digest written.
	// +optional
	Digest string `json:"digest,omitempty"`
	// Commit is the SHA of the commit holding the edit.
	// +optional
	Commit string `json:"commit,omitempty"`
	// PullRequestURL is the pull or merge request (PullRequest mode).
	// +optional
	PullRequestURL string `json:"pullRequestURL,omitempty"`
	// Reason says why the last attempt failed; it names the repository and
	// never carries credentials.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Attempts counts the failed attempts at this rollout's write, for the
	// retry backoff.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Time is when State last changed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}
