package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Strategy kinds. The empty kind means Simple, as in the original cvmanager.
const (
	StrategySimple           = "Simple"
	StrategyServiceBlueGreen = "ServiceBlueGreen"
)

// Rollout states reported in status.currStatus.
const (
	StatusProgressing = "Progressing"
	StatusSuccess     = "Success"
	StatusFailed      = "Failed"
)

// Condition types on a ContainerVersion.
const (
	// ConditionReady is True when the workloads run the wanted version.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a rollout is under way.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the last rollout failed or the CV cannot act.
	ConditionDegraded = "Degraded"
	// ConditionReleaseBlocked is True when a new version exists but policy holds it back.
	ConditionReleaseBlocked = "ReleaseBlocked"
	// ConditionDrifted is True when a selected workload runs another image
	// than the deployed digest and the controller does not (or no longer)
	// restore it: driftPolicy Report, or a fight with another writer.
	ConditionDrifted = "Drifted"
	// ConditionVerified tells whether the last image considered for
	// deployment carried a valid signature (spec.policy.verify).
	ConditionVerified = "Verified"
)

// Drift policies (spec.driftPolicy).
const (
	// DriftRestore rolls a drifted workload back to the deployed digest
	// through the CV's strategy, with health checks and a history record.
	DriftRestore = "Restore"
	// DriftReport leaves the workload alone and reports it with the
	// Drifted condition and an Event.
	DriftReport = "Report"
)

// DefaultVersionSyntax picks a git SHA (short or full) among an image's tags.
const DefaultVersionSyntax = "[0-9a-f]{5,40}"

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cv,categories=all
// +kubebuilder:printcolumn:name="Tag",type=string,JSONPath=`.spec.tag`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.currVersion`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.currStatus`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ContainerVersion asks cvmanager to keep the workloads matching spec.selector
// on the image that spec.imageRepo:spec.tag points to, rolling them out with
// spec.strategy whenever the tag moves.
type ContainerVersion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ContainerVersionSpec   `json:"spec"`
	Status ContainerVersionStatus `json:"status,omitempty"`
}

// ContainerVersionSpec is what the user wants deployed and how.
//
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || self.provider != 'AWS' || self.imageRepo.matches('^[0-9]{12}[.]dkr[.]ecr(-fips)?[.][a-z0-9-]+[.]amazonaws[.]com([.]cn)?/')",message="provider AWS needs an ECR imageRepo (<account>.dkr.ecr.<region>.amazonaws.com/<name>)"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy) || !has(self.strategy.kind) || self.strategy.kind != 'ServiceBlueGreen' || has(self.strategy.blueGreen)",message="strategy.kind ServiceBlueGreen needs strategy.blueGreen with serviceName and labelNames"
// +kubebuilder:validation:XValidation:rule="!has(self.policy) || (!has(self.policy.autoReleaseBranches) && !has(self.policy.branchRestriction)) || (has(self.versionSyntax) && self.versionSyntax.matches('[(][?]P?<branch>'))",message="policy.autoReleaseBranches and policy.branchRestriction need a versionSyntax with a named branch group, e.g. (?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})"
type ContainerVersionSpec struct {
	// ImageRepo is the image repository to watch, without tag or digest,
	// e.g. "123456789012.dkr.ecr.us-east-1.amazonaws.com/app" or "nginx".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="imageRepo must not contain a digest (@sha256:...); name the repository only"
	// +kubebuilder:validation:XValidation:rule="!self.matches(':[^/]*$')",message="imageRepo must not contain a tag; put the tag in spec.tag"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*$') || self.contains('@') || self.matches(':[^/]*$')",message="imageRepo must be a repository name like registry.example.com:5000/team/app: lowercase letters, digits and . _ - separators"
	ImageRepo string `json:"imageRepo"`

	// Tag is the tag to follow, e.g. "env-prod". When it moves to another
	// image (or is re-pushed), the workloads are rolled out.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]*$')",message="tag must be a valid image tag: letters, digits, '_', '.' and '-', not starting with '.' or '-'"
	Tag string `json:"tag"`

	// VersionSyntax is a regular expression, anchored at both ends, that picks
	// the version tag among the tags of the image Tag points to. A named
	// group "branch", as in (?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10}),
	// says which branch a version was built from: branch releases
	// (`cvmanager release --branch`) and the branch policies read it.
	// +optional
	// +kubebuilder:default="[0-9a-f]{5,40}"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.matches('[(][?]P?<branch>') || self.matches(self) || !self.matches(self)",message="versionSyntax with a branch group must be a valid regular expression"
	VersionSyntax string `json:"versionSyntax,omitempty"`

	// PollIntervalSeconds is how often the registry is asked where Tag points.
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=5
	// +kubebuilder:validation:Maximum=86400
	PollIntervalSeconds int32 `json:"pollIntervalSeconds,omitempty"`

	// LivenessSeconds is how long a standalone syncer (`cvmanager cr sync`)
	// may go without a successful poll before `cr sync status` reports it dead.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=604800
	LivenessSeconds int32 `json:"livenessSeconds,omitempty"`

	// TimeoutSeconds bounds every wait of a rollout (workload health, jobs).
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// Selector chooses the workloads in the CV's namespace to roll out. The
	// original cvmanager's plain map form (selector: {app: web}) cannot be
	// described beside a label selector in a structural schema; `cvmanager
	// migrate` rewrites it as matchLabels and the admission error names it.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="selector must not be empty: an empty selector would match every workload in the namespace. The original cvmanager's plain label map (selector: {app: web}) is not a label selector here and is dropped: write it under selector.matchLabels, or rewrite old manifests with 'cvmanager migrate -f FILE'"
	Selector *metav1.LabelSelector `json:"selector"`

	// Container names the container whose image is updated.
	// +required
	Container ContainerSpec `json:"container"`

	// Strategy is how a new version is rolled out.
	// +optional
	// +kubebuilder:default={}
	Strategy StrategySpec `json:"strategy,omitempty"`

	// History records rollouts in a ConfigMap.
	// +optional
	History HistorySpec `json:"history,omitempty"`

	// Rollback restores the last successful version when a rollout fails.
	// +optional
	Rollback RollbackSpec `json:"rollback,omitempty"`

	// Config keeps a ConfigMap key equal to the deployed version.
	// +optional
	Config *ConfigSpec `json:"config,omitempty"`

	// Policy decides which versions may be deployed and when.
	// +optional
	Policy *PolicySpec `json:"policy,omitempty"`

	// PreRollout runs jobs (e.g. database migrations) before any workload changes.
	// +optional
	PreRollout *PreRolloutSpec `json:"preRollout,omitempty"`

	// Notifications are sent on rollout events.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Notifications []NotificationSpec `json:"notifications,omitempty"`

	// ImagePullSecrets name dockerconfigjson Secrets in the CV's namespace used
	// to read the registry, in addition to the workloads' own pull secrets.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	ImagePullSecrets []LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Provider names the cloud whose workload identity reads the registry
	// when no pull secret holds credentials for its host, as Flux's
	// provider does: AWS (ECR), GCP (Artifact Registry, GCR) or Azure (ACR);
	// Generic uses pull secrets only. Left out, it is chosen from
	// spec.imageRepo's host (*.pkg.dev and gcr.io: GCP, *.azurecr.io:
	// Azure, ECR hosts: AWS, others: Generic).
	// +optional
	// +kubebuilder:validation:Enum=Generic;AWS;GCP;Azure
	Provider string `json:"provider,omitempty"`

	// Suspend stops polling and rollouts without deleting the CV.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DriftPolicy says what happens when a selected workload is found
	// running another image than the deployed digest (kubectl set image,
	// rollout undo, a GitOps tool re-applying an older manifest): Restore
	// (the default) rolls it back to the deployed digest through the
	// strategy; Report only sets the Drifted condition. Workloads that
	// start to match the selector are brought to the deployed digest in
	// both cases.
	// +optional
	// +kubebuilder:validation:Enum=Restore;Report
	DriftPolicy string `json:"driftPolicy,omitempty"`

	// Promotion takes versions from a ContainerVersion in another cluster
	// once they have soaked there (docs/fleet.md).
	// +optional
	Promotion *PromotionSpec `json:"promotion,omitempty"`
	// WriteBack records each verified rollout's image in a git repository.
	// +optional
	WriteBack *WriteBackSpec `json:"writeBack,omitempty"`
}

// LocalObjectReference names an object in the CV's namespace.
type LocalObjectReference struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ContainerSpec names the container to update and what to verify before.
type ContainerSpec struct {
	// Name of the container (or init container) in the workloads' pod template.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="container.name must be a DNS label (lowercase letters, digits and '-')"
	Name string `json:"name"`

	// Verify runs before the rollout starts; any failure stops the rollout.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Verify []VerifySpec `json:"verify,omitempty"`
}

// StrategySpec chooses and configures the rollout strategy.
type StrategySpec struct {
	// Kind is "" or Simple (update the image in place) or ServiceBlueGreen.
	// +optional
	// +kubebuilder:validation:Enum="";Simple;ServiceBlueGreen
	Kind string `json:"kind,omitempty"`

	// BlueGreen configures the ServiceBlueGreen strategy.
	// +optional
	BlueGreen *BlueGreenSpec `json:"blueGreen,omitempty"`

	// Verify runs after the new version is up, before it counts as a success.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Verify []VerifySpec `json:"verify,omitempty"`
}

// BlueGreenSpec switches a live Service between two Deployments.
type BlueGreenSpec struct {
	// ServiceName is the live Service whose selector is switched.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ServiceName string `json:"serviceName"`

	// VerificationServiceName is a Service pointed at the new Deployment
	// before the switch, for tests against the new version.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	VerificationServiceName string `json:"verificationServiceName,omitempty"`

	// LabelNames are the pod labels that tell the two Deployments apart; the
	// Service selector is switched on these.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=317
	LabelNames []string `json:"labelNames"`

	// ScaleDown scales the old Deployment to zero after the switch.
	// +optional
	ScaleDown bool `json:"scaleDown,omitempty"`
}

// VerifySpec is one verification step.
type VerifySpec struct {
	// Kind of verification; only Image (run an image as a Job) exists.
	// +optional
	// +kubebuilder:default=Image
	// +kubebuilder:validation:Enum=Image
	Kind string `json:"kind,omitempty"`

	// Image is the verifier image, with a tag or digest.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`

	// Tag, when set, is resolved through the registry to pin Image by digest.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Tag string `json:"tag,omitempty"`

	// Command overrides the image's entrypoint.
	// +optional
	Command []string `json:"command,omitempty"`

	// Args are passed to the command.
	// +optional
	Args []string `json:"args,omitempty"`

	// TimeoutSeconds bounds the verification; defaults to spec.timeoutSeconds.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// HistorySpec configures the rollout history ConfigMap.
type HistorySpec struct {
	// Enabled records rollouts in a ConfigMap named "<name>.history".
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Name of the history; defaults to the CV's name.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="history.name must be a lowercase DNS subdomain"
	Name string `json:"name,omitempty"`

	// Limit is the most records kept, newest first.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Limit int32 `json:"limit,omitempty"`
}

// RollbackSpec configures rollback on failure.
type RollbackSpec struct {
	// Enabled restores status.successVersion when a rollout fails.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// ConfigSpec names a ConfigMap key kept equal to the deployed version.
type ConfigSpec struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="config.key must be a valid ConfigMap key (letters, digits, '-', '_', '.')"
	Key string `json:"key"`
}

// Version selection modes for PolicySpec.Selection.
const (
	SelectDigest = "Digest"
	SelectSemver = "Semver"
	SelectRegex  = "Regex"
)

// PolicySpec restricts which versions are deployed and when.
//
// +kubebuilder:validation:XValidation:rule="!has(self.selection) || self.selection != 'Semver' || has(self.semverRange)",message="policy.selection Semver needs policy.semverRange"
// +kubebuilder:validation:XValidation:rule="!has(self.selection) || self.selection != 'Regex' || has(self.tagRegex)",message="policy.selection Regex needs policy.tagRegex"
// +kubebuilder:validation:XValidation:rule="!has(self.autoReleaseBranches) || !has(self.releaseMode) || self.releaseMode != 'Manual'",message="policy.autoReleaseBranches needs releaseMode Auto: Manual holds every branch"
// +kubebuilder:validation:XValidation:rule="(!has(self.autoReleaseBranches) && !has(self.branchRestriction)) || !has(self.selection) || self.selection == 'Digest'",message="branch policies need selection Digest: a branch release moves spec.tag"
// +kubebuilder:validation:XValidation:rule="!has(self.autoReleaseBranches) || !has(self.branchRestriction) || self.autoReleaseBranches.all(b, b.matches('^(?:' + self.branchRestriction + ')$'))",message="every policy.autoReleaseBranches entry must match policy.branchRestriction"
type PolicySpec struct {
	// Selection is how the version is chosen: Digest follows spec.tag (default);
	// Semver picks the newest tag within SemverRange; Regex the greatest tag
	// matching TagRegex.
	// +optional
	// +kubebuilder:validation:Enum=Digest;Semver;Regex
	Selection string `json:"selection,omitempty"`

	// SemverRange such as ">=1.4.0 <2.0.0".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SemverRange string `json:"semverRange,omitempty"`

	// IncludePrerelease lets Semver pick pre-release versions.
	// +optional
	IncludePrerelease bool `json:"includePrerelease,omitempty"`

	// TagRegex filters tags for Regex selection; its first group, when present,
	// is the sort key.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TagRegex string `json:"tagRegex,omitempty"`

	// Order of Regex candidates.
	// +optional
	// +kubebuilder:validation:Enum=Numerical;Alphabetical
	Order string `json:"order,omitempty"`

	// AllowedVersions is an anchored regular expression a version must match
	// to be deployed; others are reported as ReleaseBlocked.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	AllowedVersions string `json:"allowedVersions,omitempty"`

	// ReleaseMode Auto deploys new versions; Manual only reports them as
	// available until a release is requested.
	// +optional
	// +kubebuilder:validation:Enum=Auto;Manual
	ReleaseMode string `json:"releaseMode,omitempty"`

	// AutoReleaseBranches lists the branches (the versionSyntax group
	// "branch") whose versions deploy as soon as the tag moves; versions of
	// other branches are held (ReleaseBlocked, BranchNotAutoReleased) until
	// `cvmanager release` approves them. Unset, every branch is released.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	AutoReleaseBranches []string `json:"autoReleaseBranches,omitempty"`

	// BranchRestriction is a regular expression, anchored at both ends, the
	// branch of a version must match, e.g. "main|release-.*". Versions of
	// other branches are never rolled out, not even by `cvmanager
	// release`: they are held with ReleaseBlocked (BranchRestricted).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches(self) || !self.matches(self)",message="policy.branchRestriction must be a valid regular expression"
	BranchRestriction string `json:"branchRestriction,omitempty"`

	// Verify requires a valid signature on every image before it is
	// deployed: a compromised CI token or registry account cannot ship an
	// image nobody vouched for. A controller-wide requirement (`cvmanager
	// run --require-signatures`) applies even when this is unset.
	// +optional
	Verify *SignaturePolicy `json:"verify,omitempty"`

	// MinAge is how old a new image must be before it is deployed, e.g.
	// "24h": its build time (org.opencontainers.image.created), or, when
	// the image states none, the time cvmanager first saw its digest
	// (status.availableSince). Until then the version is held
	// (ReleaseBlocked, reason MinAge) and status.heldUntil says when it
	// becomes eligible.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(ns|us|ms|s|m|h))+$') && duration(self) <= duration('8760h')",message="policy.minAge must be a duration such as 30m or 24h, at most 8760h"
	MinAge *metav1.Duration `json:"minAge,omitempty"`
}

// Signature verification modes (SignaturePolicy.Mode).
const (
	// VerifyEnforce refuses an image without a valid signature.
	VerifyEnforce = "Enforce"
	// VerifyAudit deploys it but reports the failure as a warning.
	VerifyAudit = "Audit"
)

// SignaturePolicy lists the trust anchors an image's signature must match:
// any one anchor that verifies is enough.
type SignaturePolicy struct {
	// Mode Enforce (default) refuses unverified images; Audit deploys them
	// with a Verified=False warning. Audit cannot weaken a controller-wide
	// requirement.
	// +optional
	// +kubebuilder:default=Enforce
	// +kubebuilder:validation:Enum=Enforce;Audit
	Mode string `json:"mode,omitempty"`

	// Keys are Secret keys holding cosign PEM public keys (ECDSA P-256/384,
	// Ed25519, RSA), as written by `cosign generate-key-pair`.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Keys []SecretKeyRef `json:"keys,omitempty"`

	// Keyless are the certificate identities accepted for keyless
	// (Fulcio) signatures, checked against TrustedRoot.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Keyless []KeylessIdentity `json:"keyless,omitempty"`

	// TrustedRoot is a ConfigMap key holding a Sigstore trusted_root.json
	// (certificate authorities, transparency logs, timestamp authorities)
	// for keyless signatures. Without it the controller's default trusted
	// root applies (--signature-trusted-root).
	// +optional
	TrustedRoot *ConfigMapKeyRef `json:"trustedRoot,omitempty"`
}

// KeylessIdentity is one accepted signer of a keyless signature: the OIDC
// issuer of its certificate and its subject (e-mail or workflow URI),
// exact or as a regular expression.
//
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="a keyless identity needs exactly one of subject or subjectRegExp"
// +kubebuilder:validation:XValidation:rule="!has(self.subjectRegExp) || self.subjectRegExp.matches(self.subjectRegExp) || !self.subjectRegExp.matches(self.subjectRegExp)",message="subjectRegExp must be a valid regular expression"
type KeylessIdentity struct {
	// Issuer is the OIDC issuer URL, e.g. https://token.actions.githubusercontent.com.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Issuer string `json:"issuer"`

	// Subject is the exact certificate subject (SAN).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Subject string `json:"subject,omitempty"`

	// SubjectRegExp matches the certificate subject (SAN), anchored.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// ConfigMapKeyRef names a key of a ConfigMap in the CV's namespace.
type ConfigMapKeyRef struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// PreRolloutSpec holds jobs run before workloads change.
type PreRolloutSpec struct {
	// Jobs run in order; each runs once per version.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Jobs []PreRolloutJob `json:"jobs,omitempty"`
}

// PreRolloutJob is one migration-style job.
//
// +kubebuilder:validation:XValidation:rule="has(self.template) != has(self.templateJobName)",message="a preRollout job needs exactly one of template or templateJobName"
type PreRolloutJob struct {
	// Name identifies the job; the Job created is named from it and the version.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="preRollout job name must be a DNS label"
	Name string `json:"name"`

	// Template is the Job to run. It is validated by the apiserver when the
	// Job is created, so the schema here is kept open.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template *batchv1.JobTemplateSpec `json:"template,omitempty"`

	// TemplateJobName names a suspended Job in the namespace to copy instead.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	TemplateJobName string `json:"templateJobName,omitempty"`

	// Containers get the new image; default the CV's container name.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Containers []string `json:"containers,omitempty"`

	// TimeoutSeconds bounds the job; defaults to spec.timeoutSeconds.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// OnFailure is Abort (leave workloads untouched) or Rollback.
	// +optional
	// +kubebuilder:default=Abort
	// +kubebuilder:validation:Enum=Abort;Rollback
	OnFailure string `json:"onFailure,omitempty"`
}

// NotificationSpec sends rollout events to a receiver.
// +kubebuilder:validation:XValidation:rule="self.type != 'Grafana' || has(self.tokenSecretRef)",message="a Grafana notification needs tokenSecretRef (a Grafana service-account token)"
// +kubebuilder:validation:XValidation:rule="self.type == 'Grafana' || !has(self.tokenSecretRef)",message="tokenSecretRef is only for type Grafana"
type NotificationSpec struct {
	// Name identifies the receiver.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Type of receiver: Webhook, Slack, or Grafana (annotations).
	// +required
	// +kubebuilder:validation:Enum=Webhook;Slack;Grafana
	Type string `json:"type"`

	// URLSecretRef points at the Secret key holding the receiver URL, kept
	// out of the spec because webhook URLs embed credentials. For Grafana:
	// the server's base URL (…/api/annotations is added).
	// +required
	URLSecretRef SecretKeyRef `json:"urlSecretRef"`

	// TokenSecretRef holds the Grafana service-account token (needs the
	// annotations:write permission); sent as a bearer token, never logged.
	// +optional
	TokenSecretRef *SecretKeyRef `json:"tokenSecretRef,omitempty"`

	// HMACSecretRef signs Webhook bodies with HMAC-SHA256.
	// +optional
	HMACSecretRef *SecretKeyRef `json:"hmacSecretRef,omitempty"`

	// Events to send; empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Enum=Started;Succeeded;Failed;RolledBack;Blocked;Promoted
	Events []string `json:"events,omitempty"`
}

// SecretKeyRef names a key of a Secret in the CV's namespace.
type SecretKeyRef struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ContainerVersionStatus is what cvmanager observed and did.
type ContainerVersionStatus struct {
	// CurrVersion is the version being or last rolled out.
	// +optional
	CurrVersion string `json:"currVersion,omitempty"`
	// CurrDigest is the digest of CurrVersion.
	// +optional
	CurrDigest string `json:"currDigest,omitempty"`
	// CurrStatus is Progressing, Success or Failed.
	// +optional
	CurrStatus string `json:"currStatus,omitempty"`
	// CurrStatusTime is when CurrStatus last changed.
	// +optional
	CurrStatusTime *metav1.Time `json:"currStatusTime,omitempty"`
	// SuccessVersion is the last version that rolled out successfully.
	// +optional
	SuccessVersion string `json:"successVersion,omitempty"`
	// SuccessDigest is the digest of SuccessVersion, the rollback target.
	// +optional
	SuccessDigest string `json:"successDigest,omitempty"`
	// Signer is who signed SuccessDigest, when its signature was verified
	// (spec.policy.verify): "key <fingerprint>" or "<subject> (<issuer>)".
	// +optional
	Signer string `json:"signer,omitempty"`
	// Provenance says where SuccessDigest was built from (its OCI
	// annotations and labels), read once per new digest; empty when the
	// image carries none or could not be read.
	// +optional
	Provenance *Provenance `json:"provenance,omitempty"`
	// FailedDigest is a digest whose rollout failed; it is not retried until
	// the tag moves elsewhere or the user clears it.
	// +optional
	FailedDigest string `json:"failedDigest,omitempty"`
	// AvailableVersion is a detected version not yet deployed (Manual release
	// mode or blocked by policy).
	// +optional
	AvailableVersion string `json:"availableVersion,omitempty"`
	// AvailableDigest is the digest of AvailableVersion.
	// +optional
	AvailableDigest string `json:"availableDigest,omitempty"`
	// AvailableSince is when the controller first saw AvailableDigest: set
	// with it, kept while the same digest stays available, cleared when a
	// rollout of it starts. spec.policy.minAge counts from it when the
	// image states no build time, so the first sighting survives a
	// restart and a change of minAge, and is not inferred from HeldUntil,
	// which other holds (the soak of spec.promotion.from) also set.
	// +optional
	AvailableSince *metav1.Time `json:"availableSince,omitempty"`
	// Rollout is the rollout in progress, kept in status so a restarted
	// controller resumes it instead of starting over.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LastPolled is when the registry was last asked successfully. A
	// standalone syncer writes it twice per livenessSeconds; the controller
	// at most every --last-polled-interval (15 min by default), to spare the
	// apiserver.
	// +optional
	LastPolled *metav1.Time `json:"lastPolled,omitempty"`
	// HeldUntil is when status.availableDigest, held by spec.policy.minAge
	// or by the soak of spec.promotion.from, becomes eligible.
	// +optional
	HeldUntil *metav1.Time `json:"heldUntil,omitempty"`
	// Promotion is what the controller last read of the promotion source.
	// +optional
	Promotion *PromotionStatus `json:"promotion,omitempty"`
	// Conditions are Ready, Progressing, Degraded, ReleaseBlocked and
	// Verified (the signature check of the last image considered).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// WriteBack is the outcome of the last git write-back (spec.writeBack).
	// +optional
	WriteBack *WriteBackStatus `json:"writeBack,omitempty"`
}

// RolloutStatus is the durable state of an unfinished rollout.
type RolloutStatus struct {
	// ID identifies this rollout (CV UID, digest and start time): Events,
	// notifications and history records of one rollout carry it, so a
	// replayed sync never sends or records a step twice.
	// +optional
	ID string `json:"id,omitempty"`
	// Version being rolled out.
	Version string `json:"version"`
	// Digest being rolled out.
	Digest string `json:"digest"`
	// FromVersion is what ran before.
	// +optional
	FromVersion string `json:"fromVersion,omitempty"`
	// FromDigest is what ran before.
	// +optional
	FromDigest string `json:"fromDigest,omitempty"`
	// Step is the last completed step of the strategy.
	// +optional
	Step string `json:"step,omitempty"`
	// Trigger is what started the rollout: poll, trigger, webhook, release.
	// +optional
	Trigger string `json:"trigger,omitempty"`
	// StartTime is when the rollout began; timeouts count from here.
	StartTime metav1.Time `json:"startTime"`
	// Signer is who signed the image being rolled out, when its signature
	// was verified (spec.policy.verify); it goes into the history record.
	// +optional
	Signer string `json:"signer,omitempty"`
	// RollingBack is true while the previous version is being restored.
	// +optional
	RollingBack bool `json:"rollingBack,omitempty"`
	// Provenance of the image being rolled out; it becomes
	// status.provenance when the rollout succeeds and goes into the history
	// record. It is filled in when read, never waited for.
	// +optional
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance is what an image says about its own origin: the OCI
// annotations of its manifest (or index) and the labels of its config
// (org.opencontainers.image.*, and dev.cvmanager.image.ci-url for the CI
// run). Values are kept as the image carries them, so people can trace a
// running version back to its commit and build.
type Provenance struct {
	// Revision is the source revision (commit) the image was built from.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Revision string `json:"revision,omitempty"`
	// Source is the URL of the source repository.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Source string `json:"source,omitempty"`
	// Created is the build time, as the image states it (RFC 3339).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Created string `json:"created,omitempty"`
	// Authors are the people or organisation responsible for the image.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Authors string `json:"authors,omitempty"`
	// URL is where to find more about the image.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
	// CILink is the CI run that built the image
	// (dev.cvmanager.image.ci-url).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	CILink string `json:"ciLink,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// ContainerVersionList is a list of ContainerVersions.
type ContainerVersionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []ContainerVersion `json:"items"`
}
