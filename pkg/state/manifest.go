package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// SchemaVersion is the layout version written in every manifest. Import
// refuses a newer one rather than guess at fields it does not know.
const SchemaVersion = 1

// Keys of the state layout, relative to the backend's path.
const (
	ManifestKey = "manifest.json"
	CVPrefix    = "cvs/"
)

// Manifest describes one export. It is written after every object it names,
// so it always describes a complete export.
type Manifest struct {
	SchemaVersion int `json:"schemaVersion"`
	// ClusterID identifies the exporting cluster (the kube-system
	// namespace's UID unless set by flag).
	ClusterID string `json:"clusterID"`
	// Owner is the writer the path belongs to.
	Owner Owner `json:"owner"`
	// Time is when this export finished.
	Time time.Time `json:"time"`
	// Namespaces are the namespaces exported; empty means all.
	Namespaces []string `json:"namespaces,omitempty"`
	// Objects are the CV objects of this export, sorted by key.
	Objects []ObjectRef `json:"objects"`
	// Workloads are the workload objects of an export with --workloads
	// (each ref names its Kind), sorted by key.
	Workloads []ObjectRef `json:"workloads,omitempty"`
}

// all is every object the manifest names.
func (m *Manifest) all() []ObjectRef {
	return append(slices.Clone(m.Objects), m.Workloads...)
}

// Owner is the cluster and process that own a state path. A continuous
// exporter sets Interval and refreshes Heartbeat on every export; an
// owner whose heartbeat is older than StaleAfter(Interval) is presumed dead.
type Owner struct {
	ClusterID string `json:"clusterID"`
	// Identity is the process, e.g. the controller pod's name or user@host.
	Identity string `json:"identity"`
	// Heartbeat is the last time the owner wrote the path.
	Heartbeat time.Time `json:"heartbeat"`
	// Interval is the continuous export interval; 0 for a one-shot export
	// or an import that claimed the path.
	Interval Duration `json:"interval,omitempty"`
	// ClaimedBy says how the path was taken: "export" or "import".
	ClaimedBy string `json:"claimedBy,omitempty"`
}

// ObjectRef names one object of an export: a CV's, or a workload's.
type ObjectRef struct {
	// Kind is the workload's kind; empty for a CV.
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
	SHA256    string `json:"sha256"`
	// Version is the S3 version id on a versioned bucket.
	Version string `json:"version,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON, for people reading
// the manifest.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// StaleAfter is how long an owner may stay silent before it is presumed
// gone: three missed exports, and never less than a minute so a slow
// export is not mistaken for a dead exporter.
func StaleAfter(interval time.Duration) time.Duration {
	return max(3*interval, time.Minute)
}

// Alive reports whether the owner is a continuous exporter that wrote
// recently enough to be presumed running.
func (o Owner) Alive(now time.Time) bool {
	return o.Interval > 0 && now.Sub(o.Heartbeat) < StaleAfter(time.Duration(o.Interval))
}

// How an owner took a path.
const (
	ClaimExport = "export"
	ClaimImport = "import"
)

// ErrOwned is wrapped by the errors of the ownership guards, so callers can
// tell "someone else writes here" from an I/O failure.
var ErrOwned = errors.New("state path owned by another writer")

// CheckExport says whether clusterID may write a path whose manifest is m
// (nil when the path is empty). Only the owning cluster may, so a cluster
// that lost the path to an import never overwrites the new owner's state.
func CheckExport(m *Manifest, clusterID string) error {
	if m == nil || m.Owner.ClusterID == "" || m.Owner.ClusterID == clusterID {
		return nil
	}
	return fmt.Errorf("%w: owned by cluster %s (%s, claimed by %s, last written %s); this cluster is %s: export to another --path, or pass --force once the owner is retired",
		ErrOwned, m.Owner.ClusterID, m.Owner.Identity, m.Owner.claimedBy(), m.Owner.Heartbeat.Format(time.RFC3339), clusterID)
}

// CheckImport says whether clusterID may take over a path whose manifest is
// m: not while another cluster's continuous exporter is alive, since both
// would then write the same state.
func CheckImport(m *Manifest, clusterID string, now time.Time) error {
	if m == nil || m.Owner.ClusterID == clusterID || !m.Owner.Alive(now) {
		return nil
	}
	return fmt.Errorf("%w: cluster %s (%s) exports here every %s, last %s ago; importing would make two clusters write the same state: pass --new-path <other path> to import and write this cluster's state there, or stop that exporter (or pass --force if it is gone for good)",
		ErrOwned, m.Owner.ClusterID, m.Owner.Identity, time.Duration(m.Owner.Interval),
		now.Sub(m.Owner.Heartbeat).Round(time.Second))
}

// claimedBy is how the owner took the path; manifests that do not say were
// written by an export.
func (o Owner) claimedBy() string {
	if o.ClaimedBy == "" {
		return ClaimExport
	}
	return o.ClaimedBy
}

// ReadManifest reads the backend's manifest; an empty path gives nil, nil.
func ReadManifest(ctx context.Context, b Backend) (*Manifest, error) {
	data, err := b.Get(ctx, ManifestKey, "")
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s/%s is not a cvmanager state manifest: %w", b, ManifestKey, err)
	}
	if m.SchemaVersion > SchemaVersion {
		return nil, fmt.Errorf("%s/%s has schema version %d; this cvmanager reads up to %d: upgrade cvmanager",
			b, ManifestKey, m.SchemaVersion, SchemaVersion)
	}
	return m, nil
}

func writeManifest(ctx context.Context, b Backend, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = b.Put(ctx, ManifestKey, append(data, '\n'))
	return err
}
