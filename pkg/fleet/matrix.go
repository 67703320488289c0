package fleet

import (
	"sort"
	"time"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Entry is what one cluster says of one ContainerVersion, for the fleet
// view: read from the CV itself (`status --contexts`) or from a peer
// dashboard's workload rows (the fleet page).
type Entry struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Version   string    `json:"version,omitempty"`
	Digest    string    `json:"digest,omitempty"`
	State     string    `json:"state,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Drifted   bool      `json:"drifted,omitempty"`
	// Held is a version detected but not deployed (policy, minAge, soak).
	Held string `json:"held,omitempty"`
	// HeldUntil is when Held becomes eligible on its own (minAge, soak).
	HeldUntil time.Time `json:"heldUntil,omitzero"`
}

// Cluster is one column: its name, and what its read gave.
type Cluster struct {
	Name string `json:"name"`
	// Error is why the cluster could not be read this time ("" when it was).
	Error string `json:"error,omitempty"`
	// Stale is set when Entries are from an earlier read (the last one
	// failed or is older than the refresh allows); Fetched says when.
	Stale   bool      `json:"stale,omitempty"`
	Fetched time.Time `json:"fetched,omitzero"`
	// Entries are the CVs it runs; nil when never read.
	Entries []Entry `json:"-"`
}

// Reachable reports whether the column has anything to show.
func (c *Cluster) Reachable() bool { return c.Entries != nil }

// Matrix is the fleet view: one row per namespace/name, one column per
// cluster. A cell is nil where the cluster has no such CV, or could not be
// read (the column then says why: never shown as empty).
type Matrix struct {
	Clusters []Cluster `json:"clusters"`
	Rows     []Row     `json:"rows"`
}

// Row is one CV name across the clusters; Cells line up with Clusters.
type Row struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Cells     []*Entry `json:"cells"`
	// Differs is true when the clusters that have it run different versions.
	Differs bool `json:"differs,omitempty"`
}

// NewMatrix lines up the clusters' entries by namespace/name, rows sorted.
// Entries of one name within a cluster (a CV's several workloads) are
// merged: the worst state wins and any drift marks the cell.
func NewMatrix(clusters []Cluster) Matrix {
	type key struct{ ns, name string }
	rows := map[key]*Row{}
	for i := range clusters {
		for _, e := range clusters[i].Entries {
			k := key{e.Namespace, e.Name}
			r := rows[k]
			if r == nil {
				r = &Row{Namespace: e.Namespace, Name: e.Name, Cells: make([]*Entry, len(clusters))}
				rows[k] = r
			}
			if r.Cells[i] == nil {
				e := e
				r.Cells[i] = &e
				continue
			}
			merge(r.Cells[i], e)
		}
	}
	m := Matrix{Clusters: clusters, Rows: make([]Row, 0, len(rows))}
	for _, r := range rows {
		r.Differs = differs(r.Cells)
		m.Rows = append(m.Rows, *r)
	}
	sort.Slice(m.Rows, func(i, j int) bool {
		a, b := m.Rows[i], m.Rows[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return m
}

// stateRank orders states, worst first, for merging a CV's workloads.
var stateRank = map[string]int{"Failed": 0, "Progressing": 1, "Held": 2, "Drifted": 3, "Pending": 4, "Success": 5}

func merge(into *Entry, e Entry) {
	if r, ok := stateRank[e.State]; ok && r < rankOf(into.State) {
		into.State = e.State
	}
	into.Drifted = into.Drifted || e.Drifted
	if e.Since.After(into.Since) {
		into.Since = e.Since
	}
}

func rankOf(s string) int {
	if r, ok := stateRank[s]; ok {
		return r
	}
	return len(stateRank)
}

func differs(cells []*Entry) bool {
	version := ""
	for _, c := range cells {
		if c == nil {
			continue
		}
		if version == "" {
			version = c.Version
		} else if c.Version != version {
			return true
		}
	}
	return false
}

// EntryOf is what a CV says of itself, for the fleet view.
func EntryOf(cv *cvv1.ContainerVersion) Entry {
	st := &cv.Status
	e := Entry{Namespace: cv.Namespace, Name: cv.Name, Version: st.CurrVersion, Digest: st.CurrDigest,
		Drifted: conditionTrue(st.Conditions, cvv1.ConditionDrifted), Held: st.AvailableVersion}
	if st.CurrStatusTime != nil {
		e.Since = st.CurrStatusTime.Time
	}
	if st.HeldUntil != nil {
		e.HeldUntil = st.HeldUntil.Time
	}
	switch {
	case st.CurrStatus == cvv1.StatusProgressing || st.CurrStatus == cvv1.StatusFailed:
		e.State = st.CurrStatus
	case st.AvailableVersion != "" && conditionTrue(st.Conditions, cvv1.ConditionReleaseBlocked):
		e.State = "Held"
	case e.Drifted:
		e.State = "Drifted"
	case st.CurrStatus == cvv1.StatusSuccess:
		e.State = cvv1.StatusSuccess
	default:
		e.State = "Pending"
	}
	return e
}

// EntriesOf are the entries of a cluster's CVs (never nil: a cluster read
// with no CVs is reachable and empty).
func EntriesOf(cvs []cvv1.ContainerVersion) []Entry {
	out := make([]Entry, 0, len(cvs))
	for i := range cvs {
		out = append(out, EntryOf(&cvs[i]))
	}
	return out
}
