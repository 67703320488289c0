package history

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Outcomes of a rollout, shared by the controller that writes them and the
// dashboard that colours them.
const (
	OutcomeSuccess    = "Success"
	OutcomeFailed     = "Failed"
	OutcomeRolledBack = "RolledBack"
	OutcomeAborted    = "Aborted"
	OutcomePromoted   = "Promoted"
	// OutcomeBlocked: the image was refused before any workload changed
	// (an unsigned or untrusted image under spec.policy.verify).
	OutcomeBlocked = "Blocked"
)

// Triggers say what started a rollout, so a surprising deploy can be traced
// back to a poll, an API call, a registry webhook, a release or a promotion.
const (
	TriggerPoll    = "poll"
	TriggerAPI     = "trigger"
	TriggerWebhook = "webhook"
	TriggerRelease = "release"
	TriggerPromote = "promote"
	// TriggerImport is a rollout of the last-known-good version restored
	// by `cvmanager state import`.
	TriggerImport = "import"
	// TriggerClearFailed is a poll asked for by clearing a failed digest.
	TriggerClearFailed = "clear-failed"
	// TriggerDrift is a rollout that restores the deployed digest on a
	// workload someone changed behind the controller's back.
	TriggerDrift = "drift"
	// TriggerJoin is a rollout that brings a workload that started to
	// match the selector to the deployed digest.
	TriggerJoin = "join"
)

// Actions say what a record is about; empty means a rollout, the only kind
// older histories hold.
const (
	ActionPromote = "promote"
)

// Record is one finished rollout, or an action taken on the CV such as a
// promotion's intent (see Action). Field names are the JSON schema of the
// stored history, read by the dashboard and by people with kubectl, so they
// only ever gain optional fields.
type Record struct {
	// ID identifies the rollout (e.g. a hash of the CV's UID, the digest and
	// the start time); appending an ID already stored is a no-op so a retried
	// or restarted writer cannot duplicate a rollout.
	ID string `json:"id"`
	// Time is when the rollout finished.
	Time time.Time `json:"time"`
	// Workload names the workloads rolled, "Deployment/web" or a comma list.
	Workload string `json:"workload"`
	// Kind is the workload kind when all workloads share one.
	Kind string `json:"kind,omitempty"`
	// Container is the container whose image changed.
	Container string `json:"container"`
	// FromVersion and FromDigest are what ran before; empty on a first deploy.
	FromVersion string `json:"fromVersion,omitempty"`
	FromDigest  string `json:"fromDigest,omitempty"`
	// ToVersion and ToDigest are what the rollout deployed.
	ToVersion string `json:"toVersion"`
	ToDigest  string `json:"toDigest"`
	// Strategy is the rollout strategy kind, e.g. Simple or ServiceBlueGreen.
	Strategy string `json:"strategy"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// Reason explains a non-successful outcome; truncated to MaxReasonBytes.
	Reason string `json:"reason,omitempty"`
	// Trigger is one of the Trigger constants.
	Trigger string `json:"trigger,omitempty"`
	// Jobs are the pre-rollout and verification jobs that ran.
	Jobs []JobRecord `json:"jobs,omitempty"`
	// Signer is who signed the deployed image, when signatures are
	// verified: "key <fingerprint>" or "<subject> (<issuer>)".
	Signer string `json:"signer,omitempty"`
	// Provenance is where the deployed image was built from (its OCI
	// annotations and labels: revision, source, created, authors, url,
	// ciLink), when it carries them and they were read in time.
	Provenance *Provenance `json:"provenance,omitempty"`
	// DurationSeconds is how long the rollout took.
	DurationSeconds float64 `json:"durationSeconds,omitempty"`
	// Action is what the record is about: empty for a rollout, or one of
	// the Action constants (e.g. a promotion's intent).
	Action string `json:"action,omitempty"`
	// Actor is who asked for the action: the Kubernetes user or --actor.
	Actor string `json:"actor,omitempty"`
	// From is where a promoted version came from, "namespace/cv".
	From string `json:"from,omitempty"`
	// CV names the ContainerVersion (in the ConfigMap's namespace) that
	// wrote the record. A workload's history may hold records of several
	// CVs over time; records written before this field existed lack it and
	// belong to the CV whose history ConfigMap holds them.
	CV string `json:"cv,omitempty"`
	// Rollout identifies the rollout a per-workload record belongs to:
	// the records one rollout writes into the histories of its workloads
	// share it, and the CV's history shows them as one record.
	Rollout string `json:"rollout,omitempty"`
	// WriteBack is where git stands on the image the rollout left running
	// (spec.writeBack): Pending in the record the finish writes, then the
	// commit (or pull request) or the failure once the writer reported it.
	// Absent when the CV has no spec.writeBack, and in older records.
	WriteBack *WriteBack `json:"writeBack,omitempty"`
}

// WriteBack is a record's git write-back: the same state, commit, pull
// request URL and reason as the CV's status.writeBack, kept per rollout so
// the history still names the commit after later rollouts moved status on.
type WriteBack struct {
	// RolloutID is status.rollout.id of the rollout whose image is written
	// (for a rollback, of the failed rollout whose restored image is
	// written), as status.writeBack.rolloutID names it: the key by which
	// the writer's outcome finds this record (Store.SetWriteBack).
	RolloutID string `json:"rolloutID"`
	// State is Pending, Written or Failed.
	State string `json:"state"`
	// Commit is the SHA of the commit holding the edit.
	Commit string `json:"commit,omitempty"`
	// URL is the pull or merge request, in PullRequest mode.
	URL string `json:"url,omitempty"`
	// Reason says why the write failed; it never carries a credential.
	Reason string `json:"reason,omitempty"`
}

// Provenance is the image provenance a record keeps; the same keys as a
// ContainerVersion's status.provenance.
type Provenance = cvv1.Provenance

// JobRecord is a pre-rollout or verification job of a rollout, kept so a
// failed migration is visible next to the rollout it blocked.
type JobRecord struct {
	// Name of the Job.
	Name string `json:"name"`
	// Outcome is Success or Failed.
	Outcome string `json:"outcome"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
}

// MaxReasonBytes bounds Record.Reason: a reason is for people, and an
// unbounded one (a whole log pasted in) would evict the rest of the history.
const MaxReasonBytes = 8 << 10

const truncatedMark = "… (truncated)"

// Suffix is appended to the history name to form the ConfigMap name, the
// convention kept from the original cvmanager.
const Suffix = ".history"

// maxNameLen is the longest valid ConfigMap name (a DNS subdomain).
const maxNameLen = 253

// ConfigMapName is the name of the CV's own history ConfigMap:
// spec.history.name (or the CV's name) plus ".history". It holds the CV's
// promotions and the rollouts recorded by earlier versions, which wrote
// every rollout there; rollouts are now recorded per workload (see
// WorkloadConfigMapName) and CVHistory merges both.
func ConfigMapName(cv *cvv1.ContainerVersion) string {
	base := cv.Spec.History.Name
	if base == "" {
		base = cv.Name
	}
	return boundedName(base)
}

// WorkloadConfigMapName is the name of a workload's history ConfigMap,
// "<workload>.history" in the workload's namespace, as in the original
// cvmanager: every rollout that changed the workload is recorded there.
func WorkloadConfigMapName(workloadName string) string {
	return boundedName(workloadName)
}

// boundedName is base plus Suffix. A base too long to take the suffix is
// shortened and made unique with a hash, because a name the apiserver
// rejects would silently disable the history.
func boundedName(base string) string {
	if len(base)+len(Suffix) <= maxNameLen {
		return base + Suffix
	}
	sum := sha256.Sum256([]byte(base))
	hash := hex.EncodeToString(sum[:4])
	short := strings.TrimRight(base[:maxNameLen-len(Suffix)-len(hash)-1], "-.")
	return short + "-" + hash + Suffix
}

// normalize prepares a record for storage: a missing ID is derived from the
// content (so an exact resend is still idempotent) and the reasons are
// bounded.
func normalize(rec Record) Record {
	rec.Reason = truncate(rec.Reason, MaxReasonBytes)
	if len(rec.Jobs) > 0 {
		jobs := make([]JobRecord, len(rec.Jobs))
		for i, j := range rec.Jobs {
			j.Reason = truncate(j.Reason, MaxReasonBytes)
			jobs[i] = j
		}
		rec.Jobs = jobs
	}
	if rec.WriteBack != nil {
		wb := *rec.WriteBack
		wb.Reason = truncate(wb.Reason, MaxReasonBytes)
		rec.WriteBack = &wb
	}
	if rec.ID == "" {
		rec.ID = contentID(rec)
	}
	return rec
}

// contentID hashes the fields that identify a rollout.
func contentID(rec Record) string {
	key := strings.Join([]string{rec.Time.UTC().Format(time.RFC3339Nano), rec.Workload,
		rec.Container, rec.ToDigest, rec.ToVersion, rec.Outcome}, "|")
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// truncate shortens s to at most max bytes without splitting a UTF-8
// character, marking that it was cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(truncatedMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}
