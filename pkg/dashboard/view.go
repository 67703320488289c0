// Package dashboard serves the workloads view: /v1/cv/workloads (JSON or
// HTML) lists every managed workload in the original cvmanager's row format,
// /v1/cv/workloads/{name} a workload's history (the original's URL) and
// /v1/cv/containerversions/{name}/history a ContainerVersion's,
// /v1/cv/activity the rollouts of a window with a timeline and
// /v1/cv/metrics the delivery (DORA) figures; /ui/ serves the pages'
// stylesheet and script. The same rows back `cvmanager cv get`. Series
// served on /metrics: cvmanager_containerversion_{status,condition,
// rollout_deadline_timestamp_seconds} (CVStateCollector) and
// cvmanager_dora_* / cvmanager_dora_namespace_* (DORACollector).
package dashboard

import (
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Row is one managed workload. Its JSON keys are the original cvmanager's
// row format, which its users' scripts read (`jq '.[].Version'`): the eight
// keys Namespace, Name, Type, Container, Version, AvailablePods, CV and Tag
// are spelled exactly as there, and the fields added since (Digest, Image,
// Status, DesiredPods, LastUpdate, LastError) follow the same style. Keys
// are only ever added, never renamed (docs/http.md).
type Row struct {
	Namespace string `json:"Namespace"`
	Name      string `json:"Name"`
	// Type is the workload kind: Deployment, StatefulSet, DaemonSet or CronJob.
	Type      string `json:"Type"`
	Container string `json:"Container"`
	// Version is the version the CV reports (status.currVersion).
	Version string `json:"Version"`
	// AvailablePods are the workload's available (StatefulSet: ready) pods.
	AvailablePods int32  `json:"AvailablePods"`
	CV            string `json:"CV"`
	Tag           string `json:"Tag"`
	// Digest is the digest the workload's image is pinned to.
	Digest string `json:"Digest"`
	// Image is what the workload's container actually runs, read from the
	// workload itself, never from the CV.
	Image string `json:"Image"`
	// Drifted marks a workload that does not run the CV's current digest
	// (drift, a joiner not yet rolled out, or a rollout under way).
	Drifted bool `json:"Drifted,omitempty"`
	// Status is the CV's status.currStatus.
	Status string `json:"Status"`
	// DesiredPods is the workload's desired replica count.
	DesiredPods int32 `json:"DesiredPods"`
	// LastUpdate is when Status last changed; absent when never.
	LastUpdate time.Time `json:"LastUpdate,omitzero"`
	// LastError is the Degraded condition's message while it is True.
	LastError string `json:"LastError,omitempty"`
	// State is the one word the dashboard counts and filters by:
	// Progressing, Failed, Held, Drifted, Success or Pending (StateOf).
	State string `json:"State,omitempty"`
	// Reason is the Degraded condition's reason while it is True, the
	// machine-readable half of LastError.
	Reason string `json:"Reason,omitempty"`
	// Step is the last completed step of the rollout in progress.
	Step string `json:"Step,omitempty"`
	// RolloutStart is when the rollout in progress began.
	RolloutStart time.Time `json:"RolloutStart,omitzero"`
	// AvailableVersion is a version detected but held back (Manual release
	// mode or a policy); ReleaseCommand is the command that deploys it.
	AvailableVersion string `json:"AvailableVersion,omitempty"`
	ReleaseCommand   string `json:"ReleaseCommand,omitempty"`
	// HeldUntil is when the held version becomes eligible on its own
	// (spec.policy.minAge, or the soak of spec.promotion.from).
	HeldUntil time.Time `json:"HeldUntil,omitzero"`
	// Signer is who signed the image the workload runs, when the CV
	// verifies signatures (status.signer of status.successDigest).
	Signer string `json:"Signer,omitempty"`
	// Provenance is where the image the workload runs was built from (its
	// OCI annotations and labels), when it carries any and was read.
	Provenance *Provenance `json:"Provenance,omitempty"`
	// WriteBack is where git stands on the image the workload runs, when
	// the CV writes back (spec.writeBack): "Written <commit>" (or the pull
	// request's URL), "Pending", or "Failed: <reason>".
	WriteBack string `json:"WriteBack,omitempty"`
}

// Provenance is a row's image provenance, in the row's key style: the
// status.provenance of the digest the workload runs.
type Provenance struct {
	Revision string `json:"Revision,omitempty"`
	Source   string `json:"Source,omitempty"`
	Created  string `json:"Created,omitempty"`
	Authors  string `json:"Authors,omitempty"`
	URL      string `json:"URL,omitempty"`
	CILink   string `json:"CILink,omitempty"`
}

// ShortRevision is the revision as the row shows it: a commit hash
// shortened to 7 characters as git does, anything else as it is.
func (p *Provenance) ShortRevision() string { return provenance.ShortRevision(p.Revision) }

// SourceHref is Source when it is a web URL the page may link to.
func (p *Provenance) SourceHref() string { return provenance.WebURL(p.Source) }

// CIHref is CILink when it is a web URL the page may link to.
func (p *Provenance) CIHref() string { return provenance.WebURL(p.CILink) }

// provenanceOf is the provenance of the digest a workload runs: the
// running version's, or the rollout's while one is under way.
func provenanceOf(cv *cvv1.ContainerVersion, digest string) *Provenance {
	var p *cvv1.Provenance
	switch {
	case digest == "":
	case digest == cv.Status.SuccessDigest:
		p = cv.Status.Provenance
	case cv.Status.Rollout != nil && digest == cv.Status.Rollout.Digest:
		p = cv.Status.Rollout.Provenance
	}
	return rowProvenance(p)
}

// rowProvenance is p in the row's style (nil stays nil); the history page
// shows its records' provenance with the row's markup through it.
func rowProvenance(p *cvv1.Provenance) *Provenance {
	if p == nil {
		return nil
	}
	return &Provenance{Revision: p.Revision, Source: p.Source, Created: p.Created,
		Authors: p.Authors, URL: p.URL, CILink: p.CILink}
}

// States a row can be in, in the order the dashboard counts them: what
// needs attention first.
const (
	StateProgressing = "Progressing"
	StateFailed      = "Failed"
	StateHeld        = "Held"
	StateDrifted     = "Drifted"
	StateSuccess     = "Success"
	StatePending     = "Pending"
)

// States lists the row states in display order.
var States = []string{StateProgressing, StateFailed, StateHeld, StateDrifted, StateSuccess, StatePending}

// Source lists CVs and workloads; informer listers back the server, API
// calls back the CLI.
type Source interface {
	ContainerVersions(namespace string) ([]*cvv1.ContainerVersion, error)
	Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error)
}

// Rows builds the view for namespace ("" = all), one row per workload a CV
// selects, each workload in its own CV's namespace only. Rows are ordered
// Progressing, Failed, Success, then by namespace and name, so trouble is on top.
func Rows(src Source, namespace string) ([]Row, error) {
	cvs, err := src.ContainerVersions(namespace)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, cv := range cvs {
		selector, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
		if err != nil || selector.Empty() {
			continue
		}
		workloads, err := src.Workloads(cv.Namespace, selector)
		if err != nil {
			return nil, err
		}
		for _, w := range workloads {
			rows = append(rows, rowFor(cv, w))
		}
	}
	SortRows(rows)
	return rows, nil
}

func rowFor(cv *cvv1.ContainerVersion, w workload.Workload) Row {
	image, _ := workload.ContainerImage(w, cv.Spec.Container.Name)
	available, desired := replicaCounts(w)
	r := Row{
		Namespace: cv.Namespace, Name: w.Name(), Type: string(w.Kind), Container: cv.Spec.Container.Name,
		CV: cv.Name, Tag: cv.Spec.Tag, Version: cv.Status.CurrVersion, Digest: workload.DigestOf(image),
		Image: image, AvailablePods: available, DesiredPods: desired, Status: cv.Status.CurrStatus,
	}
	r.Drifted = cv.Status.CurrDigest != "" && r.Digest != cv.Status.CurrDigest
	if r.Digest != "" && r.Digest == cv.Status.SuccessDigest {
		r.Signer = cv.Status.Signer
	}
	r.Provenance = provenanceOf(cv, r.Digest)
	r.WriteBack = writeBackOf(cv, r.Digest)
	if cv.Status.CurrStatusTime != nil {
		r.LastUpdate = cv.Status.CurrStatusTime.Time
	}
	for _, c := range cv.Status.Conditions {
		if c.Type == cvv1.ConditionDegraded && c.Status == metav1.ConditionTrue {
			r.LastError, r.Reason = c.Message, c.Reason
		}
	}
	if ro := cv.Status.Rollout; ro != nil {
		r.Step, r.RolloutStart = ro.Step, ro.StartTime.Time
	}
	if held(cv) {
		r.AvailableVersion = cv.Status.AvailableVersion
		r.ReleaseCommand = ReleaseCommand(cv)
		if cv.Status.HeldUntil != nil {
			r.HeldUntil = cv.Status.HeldUntil.Time
		}
	}
	r.State = StateOf(r)
	return r
}

// held says whether the CV holds a detected version back.
func held(cv *cvv1.ContainerVersion) bool {
	if cv.Status.AvailableDigest == "" {
		return false
	}
	for _, c := range cv.Status.Conditions {
		if c.Type == cvv1.ConditionReleaseBlocked {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// ReleaseCommand is the exact command that deploys the version cv holds
// back; --version guards against releasing something newer by mistake.
func ReleaseCommand(cv *cvv1.ContainerVersion) string {
	v := cv.Status.AvailableVersion
	if v == "" {
		v = cv.Status.AvailableDigest
	}
	return "cvmanager release -n " + shellQuote(cv.Namespace) + " --cv " + shellQuote(cv.Name) + " --version " + shellQuote(v)
}

// shellQuote leaves plain words alone and single-quotes anything else, so
// the command can be pasted as is.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// StateOf folds status, a held version and drift into one state, the
// most urgent first: a rollout under way, a failure, a held version,
// drift, then success.
func StateOf(r Row) string {
	switch {
	case r.Status == cvv1.StatusProgressing:
		return StateProgressing
	case r.Status == cvv1.StatusFailed:
		return StateFailed
	case r.ReleaseCommand != "":
		return StateHeld
	case r.Drifted:
		return StateDrifted
	case r.Status == cvv1.StatusSuccess:
		return StateSuccess
	}
	return StatePending
}

func replicaCounts(w workload.Workload) (available, desired int32) {
	switch o := w.Object.(type) {
	case *appsv1.Deployment:
		return o.Status.AvailableReplicas, replicasOf(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		return o.Status.ReadyReplicas, replicasOf(o.Spec.Replicas)
	case *appsv1.DaemonSet:
		return o.Status.NumberAvailable, o.Status.DesiredNumberScheduled
	}
	return 0, 0
}

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

var statusRank = map[string]int{cvv1.StatusProgressing: 0, cvv1.StatusFailed: 1, cvv1.StatusSuccess: 2}

func rank(status string) int {
	if r, ok := statusRank[status]; ok {
		return r
	}
	return 3
}

// SortRows orders rows Progressing → Failed → Success → unknown, then by
// namespace, name and type.
func SortRows(rows []Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if rank(a.Status) != rank(b.Status) {
			return rank(a.Status) < rank(b.Status)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Type < b.Type
	})
}

// writeBackOf says where git stands on digest, the image a workload runs:
// only the write-back of that very digest is shown.
func writeBackOf(cv *cvv1.ContainerVersion, digest string) string {
	wb := cv.Status.WriteBack
	if wb == nil || digest == "" || wb.Digest != digest {
		return ""
	}
	switch wb.State {
	case cvv1.WriteBackWritten:
		if wb.PullRequestURL != "" {
			return "Written " + wb.PullRequestURL
		}
		return "Written " + shortCommit(wb.Commit)
	case cvv1.WriteBackFailed:
		return "Failed: " + wb.Reason
	}
	return wb.State
}

// shortCommit is a commit SHA shortened to 7 characters, as git shows it.
func shortCommit(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
