package state

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
)

// DefaultConcurrency is how many objects or API writes run at once.
const DefaultConcurrency = 16

// listPageSize bounds each Kubernetes list call, so 1,500 CVs do not come
// back as one huge response.
const listPageSize = 500

// Exporter writes a cluster's CVs and histories to a Backend.
type Exporter struct {
	Kube    kubernetes.Interface
	CVs     versioned.Interface
	Backend Backend
	// ClusterID and Identity name the owner written in the manifest.
	ClusterID string
	Identity  string
	// Interval is the continuous export interval (0 for a one-shot export);
	// it tells importers how soon a silent exporter counts as gone.
	Interval time.Duration
	// Namespaces limits the export; empty exports every namespace. The path
	// then holds exactly these namespaces: objects of others are removed.
	Namespaces []string
	// Force writes even when another cluster owns the path.
	Force bool
	// Concurrency bounds parallel object writes; DefaultConcurrency when 0.
	Concurrency int
	// Workloads also exports the workloads the CVs manage (and the Services
	// blue-green CVs switch), cleaned of cluster-specific fields, so an
	// import into an empty cluster brings them back.
	Workloads bool
	// Helm, when set, also exports every deployed Helm release of the
	// namespaces (chart and values).
	Helm HelmReleases
	// Clock is the clock; the real one when nil.
	Clock clock.Clock
	// Metrics, when set, count the exports RunLoop makes.
	Metrics *ExportMetrics
}

// ExportResult says what an export did.
type ExportResult struct {
	CVs       int           `json:"cvs"`
	Workloads int           `json:"workloads,omitempty"`
	Written   int           `json:"written"`
	Unchanged int           `json:"unchanged"`
	Deleted   int           `json:"deleted"`
	Duration  time.Duration `json:"duration"`
	Location  string        `json:"location"`
}

// Export writes every CV (one object each, skipping objects whose bytes are
// unchanged since the last export), then the manifest, then removes the
// objects of CVs that no longer exist. It refuses a path another cluster
// owns unless Force.
func (e *Exporter) Export(ctx context.Context) (ExportResult, error) {
	start := e.now()
	res := ExportResult{Location: e.Backend.String()}
	prev, err := ReadManifest(ctx, e.Backend)
	if err != nil {
		return res, err
	}
	if !e.Force {
		if err := CheckExport(prev, e.ClusterID); err != nil {
			return res, fmt.Errorf("not exporting to %s: %w", e.Backend, err)
		}
	}
	states, err := Collect(ctx, e.Kube, e.CVs, e.Namespaces)
	if err != nil {
		return res, err
	}
	var workloads []Workload
	if e.Workloads {
		if workloads, err = CollectWorkloads(ctx, e.Kube, states); err != nil {
			return res, err
		}
	}
	if e.Helm != nil {
		releases, err := e.Helm.List(ctx, e.Namespaces)
		if err != nil {
			return res, err
		}
		workloads = append(workloads, releases...)
	}
	refs, written, err := writeObjects(ctx, e.Backend, e.Concurrency, asObjects(states), previousRefs(prev))
	if err != nil {
		return res, err
	}
	wrefs, wwritten, err := writeObjects(ctx, e.Backend, e.Concurrency, asObjects(workloads), previousRefs(prev))
	if err != nil {
		return res, err
	}
	m := &Manifest{SchemaVersion: SchemaVersion, ClusterID: e.ClusterID, Time: e.now(), Namespaces: e.Namespaces, Objects: refs, Workloads: wrefs,
		Owner: Owner{ClusterID: e.ClusterID, Identity: e.Identity, Heartbeat: e.now(), Interval: Duration(e.Interval), ClaimedBy: ClaimExport}}
	if err := writeManifest(ctx, e.Backend, m); err != nil {
		return res, err
	}
	stale := staleKeys(prev, append(refs, wrefs...))
	if err := e.Backend.Delete(ctx, stale); err != nil {
		return res, fmt.Errorf("removing objects of deleted CVs: %w", err)
	}
	total := len(refs) + len(wrefs)
	res.CVs, res.Workloads, res.Written, res.Unchanged, res.Deleted = len(refs), len(wrefs), written+wwritten, total-written-wwritten, len(stale)
	res.Duration = e.now().Sub(start)
	return res, nil
}

func (e *Exporter) now() time.Time {
	if e.Clock != nil {
		return e.Clock.Now()
	}
	return time.Now()
}

func previousRefs(m *Manifest) map[string]ObjectRef {
	out := map[string]ObjectRef{}
	if m != nil {
		for _, r := range m.all() {
			out[r.Key] = r
		}
	}
	return out
}

// staleKeys are the keys of the previous export that this one dropped.
func staleKeys(prev *Manifest, refs []ObjectRef) []string {
	if prev == nil {
		return nil
	}
	current := map[string]bool{}
	for _, r := range refs {
		current[r.Key] = true
	}
	var stale []string
	for _, r := range prev.all() {
		if !current[r.Key] {
			stale = append(stale, r.Key)
		}
	}
	return stale
}

// stateObject is one object of an export: a CV's state or a workload.
type stateObject interface {
	encode() ([]byte, string, error)
	ref() ObjectRef
}

func (s CVState) ref() ObjectRef {
	return ObjectRef{Namespace: s.Namespace, Name: s.Name, Key: s.Key()}
}
func (w Workload) ref() ObjectRef {
	return ObjectRef{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name, Key: w.Key()}
}

func asObjects[T stateObject](items []T) []stateObject {
	out := make([]stateObject, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

// writeObjects puts every changed object in parallel and returns the refs
// for the manifest, in the order given, and how many objects were written.
func writeObjects(ctx context.Context, b Backend, limit int, objects []stateObject, prev map[string]ObjectRef) ([]ObjectRef, int, error) {
	refs := make([]ObjectRef, len(objects))
	var mu sync.Mutex
	written := 0
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency(limit))
	for i, s := range objects {
		g.Go(func() error {
			data, sum, err := s.encode()
			if err != nil {
				return err
			}
			ref := s.ref()
			ref.SHA256 = sum
			if old, ok := prev[ref.Key]; ok && old.SHA256 == sum {
				refs[i] = old
				return nil
			}
			if ref.Version, err = b.Put(ctx, ref.Key, data); err != nil {
				return err
			}
			refs[i] = ref
			mu.Lock()
			written++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	return refs, written, nil
}

func concurrency(n int) int {
	if n <= 0 {
		return DefaultConcurrency
	}
	return n
}

// Collect reads every CV of the namespaces (all when none are given) and
// its history, sorted by namespace and name.
func Collect(ctx context.Context, kube kubernetes.Interface, cvClient versioned.Interface, namespaces []string) ([]CVState, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var states []CVState
	for _, ns := range namespaces {
		cvs, err := listCVs(ctx, cvClient, ns)
		if err != nil {
			return nil, err
		}
		histories, err := historiesOf(ctx, kube, ns, cvs)
		if err != nil {
			return nil, err
		}
		idx := indexHistories(histories)
		for i := range cvs {
			cv := &cvs[i]
			states = append(states, NewCVState(cv, cvHistoryOf(ctx, cv, histories, idx)))
		}
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Key() < states[j].Key() })
	return states, nil
}

// cvHistoryOf is the CV's whole history as one ConfigMap: its own history
// and its records in the workload histories listed beside it (rollouts are
// recorded per workload), merged as the CV's history page shows them.
// Where only the CV's own ConfigMap could be read, that is what it holds.
func cvHistoryOf(ctx context.Context, cv *cvv1.ContainerVersion, histories map[string]*corev1.ConfigMap, idx *historyIndex) *corev1.ConfigMap {
	own := histories[cv.Namespace+"/"+history.ConfigMapName(cv)]
	records, err := history.CVHistory(ctx, idx, cv, idx.workloadsOf(cv))
	if err != nil || len(records) == 0 {
		return own
	}
	data, err := history.Encode(records)
	if err != nil {
		return own
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cv.Namespace, Name: history.ConfigMapName(cv)}, Data: data}
}

// historyIndex holds the listed histories decoded once, and for each CV
// the workload histories that hold records naming it. Merging a CV's
// history then reads only those, where looking through every history of
// the namespace for each CV cost an export of 1,500 CVs 2,250,000 decodes.
type historyIndex struct {
	records map[string][]history.Record // by "namespace/ConfigMap name"
	byCV    map[string][]string         // "namespace/CV" → workload names
}

func indexHistories(histories map[string]*corev1.ConfigMap) *historyIndex {
	idx := &historyIndex{records: map[string][]history.Record{}, byCV: map[string][]string{}}
	for key, cm := range histories {
		records, err := history.Decode(cm)
		if err != nil {
			continue // exported empty rather than failing the export
		}
		idx.records[key] = records
		ns, name, _ := strings.Cut(key, "/")
		workload := strings.TrimSuffix(name, history.Suffix)
		for _, rec := range records {
			if cv := ns + "/" + rec.CV; rec.CV != "" && !slices.Contains(idx.byCV[cv], workload) {
				idx.byCV[cv] = append(idx.byCV[cv], workload)
			}
		}
	}
	for _, names := range idx.byCV {
		slices.Sort(names)
	}
	return idx
}

// workloadsOf names the workload histories holding records of cv.
func (idx *historyIndex) workloadsOf(cv *cvv1.ContainerVersion) []string {
	return idx.byCV[cv.Namespace+"/"+cv.Name]
}

// List serves history.CVHistory from the decoded histories.
func (idx *historyIndex) List(_ context.Context, namespace, name string) ([]history.Record, error) {
	return idx.records[namespace+"/"+name], nil
}

func listCVs(ctx context.Context, client versioned.Interface, namespace string) ([]cvv1.ContainerVersion, error) {
	var out []cvv1.ContainerVersion
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := client.CvmanagerV1alpha1().ContainerVersions(namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing ContainerVersions: %w", err)
		}
		out = append(out, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// historiesOf returns the history ConfigMaps by "namespace/name". It lists
// them with one label selector; where RBAC forbids listing ConfigMaps (a
// role that only gets them) it reads each CV's by name.
func historiesOf(ctx context.Context, kube kubernetes.Interface, namespace string, cvs []cvv1.ContainerVersion) (map[string]*corev1.ConfigMap, error) {
	out := map[string]*corev1.ConfigMap{}
	if len(cvs) == 0 {
		return out, nil
	}
	opts := metav1.ListOptions{LabelSelector: history.Selector, Limit: listPageSize}
	for {
		list, err := kube.CoreV1().ConfigMaps(namespace).List(ctx, opts)
		if apierrors.IsForbidden(err) {
			return historiesByName(ctx, kube, cvs)
		}
		if err != nil {
			return nil, fmt.Errorf("listing history ConfigMaps: %w", err)
		}
		for i := range list.Items {
			cm := &list.Items[i]
			out[cm.Namespace+"/"+cm.Name] = cm
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

func historiesByName(ctx context.Context, kube kubernetes.Interface, cvs []cvv1.ContainerVersion) (map[string]*corev1.ConfigMap, error) {
	out := map[string]*corev1.ConfigMap{}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for i := range cvs {
		cv := &cvs[i]
		g.Go(func() error {
			name := history.ConfigMapName(cv)
			cm, err := kube.CoreV1().ConfigMaps(cv.Namespace).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading history %s/%s: %w", cv.Namespace, name, err)
			}
			mu.Lock()
			out[cv.Namespace+"/"+name] = cm
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}
