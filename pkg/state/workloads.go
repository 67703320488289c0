package state

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// WorkloadPrefix is the key prefix of the exported workloads.
const WorkloadPrefix = "workloads/"

// The kinds `state export --workloads` carries: the workloads a CV's
// selector picks, and the Services a blue-green CV switches.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindCronJob     = "CronJob"
	KindService     = "Service"
	// KindHelmRelease is an exported Helm release (chart and values), with
	// `--helm-releases`.
	KindHelmRelease = "HelmRelease"
)

// HelmReleaseAPIVersion marks an exported Helm release: it is cvmanager's
// own format, not a Kubernetes object.
const HelmReleaseAPIVersion = "state.cvmanager.dev/v1"

// HelmReleases reads and installs Helm releases (pkg/helmrelease, with the
// Helm SDK); pkg/state only stores them.
type HelmReleases interface {
	// List returns the deployed releases of the namespaces (all when none).
	List(ctx context.Context, namespaces []string) ([]Workload, error)
	// Install installs one unless it exists, returning the outcome
	// (ImportCreated, ImportSkipped or ImportPlanned) and a detail.
	Install(ctx context.Context, w Workload, dryRun bool) (action, detail string, err error)
}

// Workload is one exported object: a plain Kubernetes manifest without the
// fields the cluster set (uid, resourceVersion, status, clusterIPs, ...),
// so it can be created in another cluster (or applied with kubectl).
type Workload struct {
	Kind      string
	Namespace string
	Name      string
	Object    map[string]any
}

// Key is the backend key of the workload's object.
func (w Workload) Key() string { return WorkloadKey(w.Kind, w.Namespace, w.Name) }

// WorkloadKey is the key of the exported object kind namespace/name.
func WorkloadKey(kind, namespace, name string) string {
	return WorkloadPrefix + namespace + "/" + strings.ToLower(kind) + "/" + name + ".json"
}

func (w Workload) encode() ([]byte, string, error) {
	data, err := json.MarshalIndent(w.Object, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encoding %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	data = append(data, '\n')
	return data, digestOf(data), nil
}

// decodeWorkload checks data against ref and parses it.
func decodeWorkload(data []byte, ref ObjectRef) (Workload, error) {
	if got := digestOf(data); got != ref.SHA256 {
		return Workload{}, fmt.Errorf("%s changed since the manifest was written (sha256 %s, manifest says %s): an export is probably running; retry", ref.Key, got, ref.SHA256)
	}
	w := Workload{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
	if err := json.Unmarshal(data, &w.Object); err != nil {
		return Workload{}, fmt.Errorf("%s: %w", ref.Key, err)
	}
	meta, _ := w.Object["metadata"].(map[string]any)
	if w.Object["kind"] != ref.Kind || meta["namespace"] != ref.Namespace || meta["name"] != ref.Name {
		return Workload{}, fmt.Errorf("%s does not hold %s %s/%s", ref.Key, ref.Kind, ref.Namespace, ref.Name)
	}
	return w, nil
}

// droppedWorkloadAnnotations are set by the cluster or by kubectl.
var droppedWorkloadAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"deployment.kubernetes.io/revision",
}

// cleanMeta keeps what a user declares: name, namespace, labels and
// annotations. uid, resourceVersion, generation, creationTimestamp,
// managedFields, ownerReferences and finalizers stay behind.
func cleanMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	annotations := maps.Clone(m.Annotations)
	for _, a := range droppedWorkloadAnnotations {
		delete(annotations, a)
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	return metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, Labels: maps.Clone(m.Labels), Annotations: annotations}
}

// toManifest renders a cleaned typed object as a manifest without status
// and without the null creationTimestamps the typed structs carry.
func toManifest(obj runtime.Object, apiVersion, kind string) (map[string]any, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u["apiVersion"], u["kind"] = apiVersion, kind
	delete(u, "status")
	dropNullTimestamps(u)
	// A JSON round trip gives the exact types a decoded export has, so a
	// live object and an exported one compare byte for byte.
	data, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(data, &out)
}

func dropNullTimestamps(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if ts, found := m["creationTimestamp"]; found && ts == nil {
		delete(m, "creationTimestamp")
	}
	for _, child := range m {
		dropNullTimestamps(child)
	}
}

func cleanDeployment(d *appsv1.Deployment) (map[string]any, error) {
	c := appsv1.Deployment{ObjectMeta: cleanMeta(d.ObjectMeta), Spec: *d.Spec.DeepCopy()}
	return toManifest(&c, "apps/v1", KindDeployment)
}

func cleanStatefulSet(s *appsv1.StatefulSet) (map[string]any, error) {
	c := appsv1.StatefulSet{ObjectMeta: cleanMeta(s.ObjectMeta), Spec: *s.Spec.DeepCopy()}
	return toManifest(&c, "apps/v1", KindStatefulSet)
}

func cleanDaemonSet(s *appsv1.DaemonSet) (map[string]any, error) {
	c := appsv1.DaemonSet{ObjectMeta: cleanMeta(s.ObjectMeta), Spec: *s.Spec.DeepCopy()}
	return toManifest(&c, "apps/v1", KindDaemonSet)
}

func cleanCronJob(j *batchv1.CronJob) (map[string]any, error) {
	c := batchv1.CronJob{ObjectMeta: cleanMeta(j.ObjectMeta), Spec: *j.Spec.DeepCopy()}
	return toManifest(&c, "batch/v1", KindCronJob)
}

// cleanService drops the addresses the cluster allocated: clusterIP(s),
// the health-check node port, and every nodePort no field manager set (an
// allocated one is in no manager's field set).
func cleanService(s *corev1.Service) (map[string]any, error) {
	c := corev1.Service{ObjectMeta: cleanMeta(s.ObjectMeta), Spec: *s.Spec.DeepCopy()}
	c.Spec.ClusterIP, c.Spec.ClusterIPs, c.Spec.HealthCheckNodePort = "", nil, 0
	userPorts := userNodePorts(s.ManagedFields)
	for i := range c.Spec.Ports {
		p := &c.Spec.Ports[i]
		if !userPorts[portKey(p.Port, p.Protocol)] {
			p.NodePort = 0
		}
	}
	return toManifest(&c, "v1", KindService)
}

func portKey(port int32, protocol corev1.Protocol) string {
	return fmt.Sprintf(`k:{"port":%d,"protocol":"%s"}`, port, protocol)
}

// userNodePorts are the ports (by their managed-fields key) whose nodePort
// some field manager set.
func userNodePorts(managed []metav1.ManagedFieldsEntry) map[string]bool {
	out := map[string]bool{}
	for _, m := range managed {
		if m.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Spec struct {
				Ports map[string]map[string]any `json:"f:ports"`
			} `json:"f:spec"`
		}
		if json.Unmarshal(m.FieldsV1.Raw, &fields) != nil {
			continue
		}
		for key, f := range fields.Spec.Ports {
			if _, ok := f["f:nodePort"]; ok {
				out[key] = true
			}
		}
	}
	return out
}

// CollectWorkloads reads the workloads the CVs of states select (by their
// labels, as the controller does), the Services of blue-green CVs and the
// objects that go with the workloads (companions: Services selecting
// their pods, HPAs, PDBs, spec.config ConfigMaps), cleaned, sorted by key.
func CollectWorkloads(ctx context.Context, kube kubernetes.Interface, states []CVState) ([]Workload, error) {
	byNS := map[string][]CVState{}
	for _, s := range states {
		byNS[s.Namespace] = append(byNS[s.Namespace], s)
	}
	var out []Workload
	for ns, cvs := range byNS {
		c := &collector{kube: kube, ns: ns, seen: map[string]bool{}}
		if err := c.compileSelectors(cvs); err != nil {
			return nil, err
		}
		if err := c.collect(ctx, cvs); err != nil {
			return nil, err
		}
		out = append(out, c.out...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}

// collector gathers one namespace's workloads.
type collector struct {
	kube      kubernetes.Interface
	ns        string
	selectors []labels.Selector
	seen      map[string]bool
	out       []Workload
}

func (c *collector) compileSelectors(cvs []CVState) error {
	for _, s := range cvs {
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
		if err != nil {
			return fmt.Errorf("ContainerVersion %s/%s: selector: %w", s.Namespace, s.Name, err)
		}
		if !sel.Empty() {
			c.selectors = append(c.selectors, sel)
		}
	}
	return nil
}

func (c *collector) selected(l map[string]string) bool {
	for _, sel := range c.selectors {
		if sel.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

func (c *collector) add(kind, name string, obj map[string]any, err error) error {
	if err != nil {
		return fmt.Errorf("exporting %s %s/%s: %w", kind, c.ns, name, err)
	}
	w := Workload{Kind: kind, Namespace: c.ns, Name: name, Object: obj}
	if !c.seen[w.Key()] {
		c.seen[w.Key()] = true
		c.out = append(c.out, w)
	}
	return nil
}

func (c *collector) collect(ctx context.Context, cvs []CVState) error {
	for _, step := range []func(context.Context) error{c.deployments, c.statefulSets, c.daemonSets, c.cronJobs} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if err := c.services(ctx, cvs); err != nil {
		return err
	}
	return c.companions(ctx, cvs)
}

func (c *collector) deployments(ctx context.Context) error {
	list, err := c.kube.AppsV1().Deployments(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Deployments in %s: %w", c.ns, err)
	}
	for i := range list.Items {
		if o := &list.Items[i]; c.selected(o.Labels) {
			obj, err := cleanDeployment(o)
			if err := c.add(KindDeployment, o.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *collector) statefulSets(ctx context.Context) error {
	list, err := c.kube.AppsV1().StatefulSets(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing StatefulSets in %s: %w", c.ns, err)
	}
	for i := range list.Items {
		if o := &list.Items[i]; c.selected(o.Labels) {
			obj, err := cleanStatefulSet(o)
			if err := c.add(KindStatefulSet, o.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *collector) daemonSets(ctx context.Context) error {
	list, err := c.kube.AppsV1().DaemonSets(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing DaemonSets in %s: %w", c.ns, err)
	}
	for i := range list.Items {
		if o := &list.Items[i]; c.selected(o.Labels) {
			obj, err := cleanDaemonSet(o)
			if err := c.add(KindDaemonSet, o.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *collector) cronJobs(ctx context.Context) error {
	list, err := c.kube.BatchV1().CronJobs(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing CronJobs in %s: %w", c.ns, err)
	}
	for i := range list.Items {
		if o := &list.Items[i]; c.selected(o.Labels) {
			obj, err := cleanCronJob(o)
			if err := c.add(KindCronJob, o.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// services reads the live and verification Services of blue-green CVs; a
// missing one is not an error (the CV reports it in its own status).
func (c *collector) services(ctx context.Context, cvs []CVState) error {
	for _, s := range cvs {
		bg := s.Spec.Strategy.BlueGreen
		if bg == nil {
			continue
		}
		for _, name := range []string{bg.ServiceName, bg.VerificationServiceName} {
			if name == "" || c.seen[WorkloadKey(KindService, c.ns, name)] {
				continue
			}
			svc, err := c.kube.CoreV1().Services(c.ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading Service %s/%s: %w", c.ns, name, err)
			}
			obj, err := cleanService(svc)
			if err := c.add(KindService, name, obj, err); err != nil {
				return err
			}
		}
	}
	return nil
}
