package history

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// snapshotPageSize bounds one LIST of a Snapshot (and what it holds
// undecoded at once).
const snapshotPageSize = 500

// Snapshot is every history ConfigMap of one namespace as read at one
// moment, decoded, and served by name (Records).
//
// Why: a view over a whole namespace (the dashboard's delivery figures, the
// DORA series on /metrics) needs the histories of every CV. Read by name,
// that is one GET per ConfigMap name, about two per CV, through the
// controller's own client budget: at 10,000 CVs the bench's scrape sent
// 2,399 GETs before its 10 s deadline ran out, without the DORA series, and
// held the rollouts' requests back meanwhile. Listed by label it is one
// request per 500 ConfigMaps.
type Snapshot map[string]decoded

type decoded struct {
	records []Record
	err     error
}

// Snapshot lists the history ConfigMaps of namespace (one namespace: a
// namespaced install may list only in its own). It needs list on
// ConfigMaps; a caller falls back to List by name when that is forbidden.
func (s *Store) Snapshot(ctx context.Context, namespace string) (Snapshot, error) {
	snap := Snapshot{}
	opts := metav1.ListOptions{LabelSelector: Selector, Limit: snapshotPageSize}
	for {
		page, err := s.client.CoreV1().ConfigMaps(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			records, err := Decode(&page.Items[i])
			snap[page.Items[i].Name] = decoded{records: records, err: err}
		}
		if page.Continue == "" {
			return snap, nil
		}
		opts.Continue = page.Continue
	}
}

// Records returns what name held when the snapshot was read, as
// Store.List would have: nothing for a ConfigMap that does not exist (or
// carries no history label), the decode error for an unreadable one.
func (snap Snapshot) Records(name string) ([]Record, error) {
	d := snap[name]
	return d.records, d.err
}
