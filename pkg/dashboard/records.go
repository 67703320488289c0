package dashboard

import (
	"context"
	"sync"
	"time"

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
// reading it costs one ConfigMap GET per history (the controller may not
// list ConfigMaps: least privilege).
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
