package dashboard

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
)

// cvRecords are one ContainerVersion's history, as its history page shows it.
type cvRecords struct {
	Namespace, CV string
	Records       []history.Record
}

// recordCache keeps every CV's history for a short while: the activity
// view, the delivery metrics and their Prometheus series all read it, and
// reading it costs one paged LIST of history ConfigMaps per namespace
// (historySnapshots).
type recordCache struct {
	// now reads the handler's clock, which tests may replace after
	// NewHandler.
	now func() time.Time
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]recordEntry
}

type recordEntry struct {
	at      time.Time
	records []cvRecords
}

// RecordCacheTTL is how long the histories behind the activity view and
// the delivery metrics are reused before they are read again.
const RecordCacheTTL = time.Minute

// get returns the histories of the CVs of namespace ("" = all), read at
// most once per ttl.
func (c *recordCache) get(ctx context.Context, src Source, hist HistoryReader, namespace string) ([]cvRecords, error) {
	c.mu.Lock()
	defer c.mu.Unlock() // one reader at a time: concurrent scrapes share a read
	if e, ok := c.entries[namespace]; ok && c.now().Sub(e.at) < c.ttl {
		return e.records, nil
	}
	records, err := readHistories(ctx, src, hist, namespace)
	if err != nil {
		return nil, err
	}
	if c.entries == nil {
		c.entries = map[string]recordEntry{}
	}
	c.entries[namespace] = recordEntry{at: c.now(), records: records}
	return records, nil
}

// readHistories reads each CV's history (history.CVHistory) over the
// workloads it selects now.
func readHistories(ctx context.Context, src Source, hist HistoryReader, namespace string) ([]cvRecords, error) {
	cvs, err := src.ContainerVersions(namespace)
	if err != nil {
		return nil, err
	}
	if s, ok := hist.(historySnapshotter); ok {
		hist = &historySnapshots{read: s, byName: hist, taken: map[string]history.Snapshot{}, forbidden: map[string]bool{}}
	}
	var out []cvRecords
	for _, cv := range cvs {
		names, err := workloadNames(src, cv)
		if err != nil {
			return nil, err
		}
		records, err := history.CVHistory(ctx, hist, cv, names)
		if err != nil {
			return nil, err
		}
		out = append(out, cvRecords{Namespace: cv.Namespace, CV: cv.Name, Records: records})
	}
	return out, nil
}

func workloadNames(src Source, cv *cvv1.ContainerVersion) ([]string, error) {
	rows, err := Rows(singleCV{cv: cv, src: src}, cv.Namespace)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names, nil
}

// historySnapshotter lists a namespace's histories at once (history.Store).
type historySnapshotter interface {
	Snapshot(ctx context.Context, namespace string) (history.Snapshot, error)
}

// historySnapshots answers List from one history.Snapshot per namespace,
// taken at its first use, so a view over N CVs costs a LIST per namespace
// instead of about 2N GETs. A namespace whose ConfigMaps may not be listed
// (a role that only gets them) is read by name, as before. One reader
// serves one readHistories call, from one goroutine.
type historySnapshots struct {
	read      historySnapshotter
	byName    HistoryReader
	taken     map[string]history.Snapshot
	forbidden map[string]bool
}

func (h *historySnapshots) List(ctx context.Context, namespace, name string) ([]history.Record, error) {
	snap, ok := h.taken[namespace]
	if !ok && !h.forbidden[namespace] {
		var err error
		switch snap, err = h.read.Snapshot(ctx, namespace); {
		case err == nil:
			h.taken[namespace], ok = snap, true
		case apierrors.IsForbidden(err):
			h.forbidden[namespace] = true
		default:
			return nil, err
		}
	}
	if !ok {
		return h.byName.List(ctx, namespace, name)
	}
	return snap.Records(name)
}
