package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
)

// Importer recreates exported CVs in a cluster, each pinned to its
// last-known-good version (see Pin), and their history ConfigMaps.
type Importer struct {
	Kube   kubernetes.Interface
	CVs    versioned.Interface
	Source Backend
	// NewPath, when set, receives this cluster's copy of the state and
	// becomes its path, leaving Source to its current owner.
	NewPath Backend
	// ClusterID and Identity name this cluster as the new owner.
	ClusterID string
	Identity  string
	// Namespaces limits the import; empty imports every namespace.
	Namespaces []string
	// DryRun reads and checks everything and reports the plan; it writes
	// nothing, neither to the cluster nor to a backend.
	DryRun bool
	// Force takes over a path whose owner's exporter looks alive.
	Force bool
	// CreateNamespaces creates missing namespaces instead of refusing.
	CreateNamespaces bool
	// Helm installs the exported Helm releases; without it they are
	// reported failed.
	Helm HelmReleases
	// Concurrency bounds parallel reads and API writes.
	Concurrency int
	// Clock is the clock; the real one when nil.
	Clock clock.Clock
	// Author, when set (`state import` sets it to whoever runs it), is
	// recorded as the author of every CV created: cvmanager acts for a CV
	// only within its author's rights (pkg/authz), and an identity of the
	// exporting cluster means nothing here.
	Author authz.Identity
}

// Import outcomes of one CV.
const (
	ImportCreated = "created"
	ImportExists  = "exists" // a CV of that name is already there: left unchanged
	ImportPlanned = "would create"
)

// ImportItem is what Import did (or would do) with one CV.
type ImportItem struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	// Version and Digest are the pinned last-known-good; empty when the CV
	// never succeeded (it then follows its tag as a new CV would).
	Version string `json:"version,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// HistoryRecords is how many history records were restored.
	HistoryRecords int `json:"historyRecords"`
}

// ImportResult says what an import did.
type ImportResult struct {
	From   string       `json:"from"`
	Owner  string       `json:"owner"`
	DryRun bool         `json:"dryRun"`
	Items  []ImportItem `json:"items"`
	// Workloads are the exported workloads, each created, skipped or
	// failed (or, in a dry run, would be created); they are imported
	// before the CVs, so the controller finds them.
	Workloads []WorkloadItem `json:"workloads,omitempty"`
	Duration  time.Duration  `json:"duration"`
}

// Count returns how many items had action.
func (r ImportResult) Count(action string) int {
	n := 0
	for _, it := range r.Items {
		if it.Action == action {
			n++
		}
	}
	return n
}

// Import checks ownership, reads the objects the manifest names (verifying
// their digests), checks the namespaces, then recreates the CVs and their
// histories and finally claims the path (or NewPath) for this cluster.
// Nothing is written to the cluster before every object has been read and
// checked.
func (im *Importer) Import(ctx context.Context) (ImportResult, error) {
	start := im.now()
	res := ImportResult{From: im.Source.String(), DryRun: im.DryRun}
	m, err := im.readManifest(ctx)
	if err != nil {
		return res, err
	}
	res.Owner = m.Owner.ClusterID + " (" + m.Owner.Identity + ")"
	states, err := im.readStates(ctx, im.selected(m.Objects))
	if err != nil {
		return res, err
	}
	workloads, err := im.readWorkloads(ctx, im.selected(m.Workloads))
	if err != nil {
		return res, err
	}
	if err := im.ensureNamespaces(ctx, namespacesOf(states, workloads)); err != nil {
		return res, err
	}
	res.Workloads = im.importWorkloads(ctx, workloads)
	if res.Items, err = im.apply(ctx, states); err != nil {
		return res, err
	}
	if !im.DryRun {
		if err := im.claim(ctx, m, states, workloads); err != nil {
			return res, fmt.Errorf("CVs imported, but claiming the state path failed: %w", err)
		}
	}
	res.Duration = im.now().Sub(start)
	return res, nil
}

func (im *Importer) now() time.Time {
	if im.Clock != nil {
		return im.Clock.Now()
	}
	return time.Now()
}

// readManifest reads the source manifest and applies the ownership guards.
func (im *Importer) readManifest(ctx context.Context) (*Manifest, error) {
	m, err := ReadManifest(ctx, im.Source)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("no cvmanager state at %s (no %s)", im.Source, ManifestKey)
	}
	if im.Force {
		return m, nil
	}
	if im.NewPath == nil {
		if err := CheckImport(m, im.ClusterID, im.now()); err != nil {
			return nil, fmt.Errorf("not importing from %s: %w", im.Source, err)
		}
		return m, nil
	}
	target, err := ReadManifest(ctx, im.NewPath)
	if err != nil {
		return nil, err
	}
	if err := CheckExport(target, im.ClusterID); err != nil {
		return nil, fmt.Errorf("--new-path %s: %w", im.NewPath, err)
	}
	return m, nil
}

func (im *Importer) selected(refs []ObjectRef) []ObjectRef {
	if len(im.Namespaces) == 0 {
		return refs
	}
	var out []ObjectRef
	for _, r := range refs {
		if slices.Contains(im.Namespaces, r.Namespace) {
			out = append(out, r)
		}
	}
	return out
}

// readStates reads and verifies every selected object in parallel.
func (im *Importer) readStates(ctx context.Context, refs []ObjectRef) ([]CVState, error) {
	return readAll(ctx, im, refs, decodeCVState)
}

// readWorkloads reads and verifies every selected workload in parallel.
func (im *Importer) readWorkloads(ctx context.Context, refs []ObjectRef) ([]Workload, error) {
	return readAll(ctx, im, refs, decodeWorkload)
}

// readAll reads the objects refs name from the source in parallel and
// decodes each with decode, which also checks it against its ref.
func readAll[T any](ctx context.Context, im *Importer, refs []ObjectRef, decode func([]byte, ObjectRef) (T, error)) ([]T, error) {
	out := make([]T, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency(im.Concurrency))
	for i, ref := range refs {
		g.Go(func() error {
			data, err := im.Source.Get(gctx, ref.Key, ref.Version)
			if err != nil {
				return err
			}
			out[i], err = decode(data, ref)
			return err
		})
	}
	return out, g.Wait()
}

// namespacesOf lists the namespaces of the CVs and workloads, sorted.
func namespacesOf(states []CVState, workloads []Workload) []string {
	seen := map[string]bool{}
	for _, s := range states {
		seen[s.Namespace] = true
	}
	for _, w := range workloads {
		seen[w.Namespace] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// ensureNamespaces refuses (or, when asked, creates) missing namespaces
// before anything is written, so a typo does not leave half an import.
func (im *Importer) ensureNamespaces(ctx context.Context, namespaces []string) error {
	var missing []string
	for _, ns := range namespaces {
		_, err := im.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, ns)
		case err != nil:
			return fmt.Errorf("checking namespace %s: %w", ns, err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	if !im.CreateNamespaces {
		return fmt.Errorf("namespaces missing in this cluster: %s; create them (and their workloads) first, or pass --create-namespaces",
			strings.Join(missing, ", "))
	}
	if im.DryRun {
		return nil
	}
	for _, ns := range missing {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if _, err := im.Kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return nil
}

// apply recreates each CV in parallel; a CV that already exists is left
// alone (it may hold newer state than the export).
func (im *Importer) apply(ctx context.Context, states []CVState) ([]ImportItem, error) {
	items := make([]ImportItem, len(states))
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency(im.Concurrency))
	for i, s := range states {
		g.Go(func() error {
			item, err := im.applyOne(gctx, s)
			items[i] = item
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil // keep importing the others; errors are joined below
		})
	}
	_ = g.Wait()
	return items, errors.Join(errs...)
}

func (im *Importer) applyOne(ctx context.Context, s CVState) (ImportItem, error) {
	item := ImportItem{Namespace: s.Namespace, Name: s.Name, Version: s.SuccessVersion, Digest: s.SuccessDigest,
		HistoryRecords: len(s.History)}
	if im.DryRun {
		item.Action = ImportPlanned
		if _, err := im.CVs.CvmanagerV1alpha1().ContainerVersions(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{}); err == nil {
			item.Action = ImportExists
		}
		return item, nil
	}
	created, err := im.createCV(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		item.Action = ImportExists
		return item, nil
	}
	if err != nil {
		return item, err
	}
	item.Action = ImportCreated
	if err := restoreHistory(ctx, im.Kube, created, s); err != nil {
		return item, err
	}
	return item, nil
}
