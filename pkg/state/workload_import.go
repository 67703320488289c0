package state

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Outcomes of one imported workload (besides ImportCreated and
// ImportPlanned).
const (
	ImportSkipped = "skipped" // already there; Detail says whether it matches the export
	ImportFailed  = "failed"
)

// WorkloadItem is what Import did (or would do) with one exported workload.
type WorkloadItem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	Detail    string `json:"detail,omitempty"`
}

// typedClient is the part of a client-go typed client import uses.
type typedClient[T any] interface {
	Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error)
}

// kindOps create an exported object and read the live one, cleaned the
// way an export cleans it, for comparison.
type kindOps struct {
	create func(ctx context.Context, data []byte, opts metav1.CreateOptions) error
	live   func(ctx context.Context, name string) (map[string]any, error)
}

func opsOf[T any](c typedClient[T], clean func(*T) (map[string]any, error)) kindOps {
	return kindOps{
		create: func(ctx context.Context, data []byte, opts metav1.CreateOptions) error {
			obj := new(T)
			if err := json.Unmarshal(data, obj); err != nil {
				return err
			}
			_, err := c.Create(ctx, obj, opts)
			return err
		},
		live: func(ctx context.Context, name string) (map[string]any, error) {
			obj, err := c.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return clean(obj)
		},
	}
}

func opsFor(kube kubernetes.Interface, kind, ns string) (kindOps, error) {
	switch kind {
	case KindDeployment:
		return opsOf[appsv1.Deployment](kube.AppsV1().Deployments(ns), cleanDeployment), nil
	case KindStatefulSet:
		return opsOf[appsv1.StatefulSet](kube.AppsV1().StatefulSets(ns), cleanStatefulSet), nil
	case KindDaemonSet:
		return opsOf[appsv1.DaemonSet](kube.AppsV1().DaemonSets(ns), cleanDaemonSet), nil
	case KindCronJob:
		return opsOf[batchv1.CronJob](kube.BatchV1().CronJobs(ns), cleanCronJob), nil
	case KindService:
		return opsOf[corev1.Service](kube.CoreV1().Services(ns), cleanService), nil
	case KindConfigMap:
		return opsOf[corev1.ConfigMap](kube.CoreV1().ConfigMaps(ns), cleanConfigMap), nil
	case KindHPA:
		return opsOf[autoscalingv2.HorizontalPodAutoscaler](kube.AutoscalingV2().HorizontalPodAutoscalers(ns), cleanHPA), nil
	case KindPDB:
		return opsOf[policyv1.PodDisruptionBudget](kube.PolicyV1().PodDisruptionBudgets(ns), cleanPDB), nil
	}
	return kindOps{}, fmt.Errorf("kind %s is not one cvmanager exports", kind)
}

// importWorkload creates w unless an object of its name exists. A dry run
// asks the API server to validate the create without persisting it.
func (im *Importer) importWorkload(ctx context.Context, w Workload) WorkloadItem {
	item := WorkloadItem{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
	fail := func(err error) WorkloadItem {
		item.Action, item.Detail = ImportFailed, err.Error()
		return item
	}
	if w.Kind == KindHelmRelease {
		return im.installRelease(ctx, w, item)
	}
	ops, err := opsFor(im.Kube, w.Kind, w.Namespace)
	if err != nil {
		return fail(err)
	}
	data, err := json.Marshal(w.Object)
	if err != nil {
		return fail(err)
	}
	opts := metav1.CreateOptions{FieldManager: "cvmanager-import"}
	if im.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err = ops.create(ctx, data, opts)
	switch {
	case err == nil && im.DryRun:
		item.Action = ImportPlanned
	case err == nil:
		item.Action = ImportCreated
	case im.DryRun && apierrors.IsNotFound(err) && im.CreateNamespaces:
		item.Action, item.Detail = ImportPlanned, "in namespace "+w.Namespace+", created first"
	case apierrors.IsAlreadyExists(err):
		item.Action, item.Detail = ImportSkipped, im.compareLive(ctx, ops, w)
	default:
		// Validation can refuse an object that already exists before its
		// name is checked (a Service's nodePort is then "already
		// allocated", by itself): an existing object is still a skip.
		if _, getErr := ops.live(ctx, w.Name); getErr == nil {
			item.Action, item.Detail = ImportSkipped, im.compareLive(ctx, ops, w)
			return item
		}
		return fail(err)
	}
	return item
}

// installRelease installs an exported Helm release through im.Helm.
func (im *Importer) installRelease(ctx context.Context, w Workload, item WorkloadItem) WorkloadItem {
	if im.Helm == nil {
		item.Action, item.Detail = ImportFailed, "a Helm release: this importer cannot install releases"
		return item
	}
	action, detail, err := im.Helm.Install(ctx, w, im.DryRun)
	if err != nil {
		item.Action, item.Detail = ImportFailed, err.Error()
		return item
	}
	item.Action, item.Detail = action, detail
	return item
}

// compareLive says how an existing object relates to the export; it is
// left unchanged either way (it may hold newer state).
func (im *Importer) compareLive(ctx context.Context, ops kindOps, w Workload) string {
	live, err := ops.live(ctx, w.Name)
	if err != nil {
		return "exists (not compared: " + err.Error() + ")"
	}
	return differsDetail(DiffFields(live, w.Object))
}

// importWorkloads imports every workload, in order (Services and
// ConfigMaps first, so a blue-green switch and the pods find them; Helm releases last, so a chart's objects
// named like an exported workload are reported by the workload), and
// reports each.
func (im *Importer) importWorkloads(ctx context.Context, ws []Workload) []WorkloadItem {
	items := make([]WorkloadItem, 0, len(ws))
	rank := func(kind string) int {
		switch kind {
		case KindService, KindConfigMap:
			return 0
		case KindHelmRelease:
			return 2
		}
		return 1
	}
	for pass := range 3 {
		for _, w := range ws {
			if rank(w.Kind) == pass {
				items = append(items, im.importWorkload(ctx, w))
			}
		}
	}
	return items
}
