package state

import (
	"context"
	"fmt"
	"sync"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// Kinds exported beside the workloads, so that importing brings a plain
// service back whole: its Services, the ConfigMap a CV keeps the version
// in, and its autoscaler and disruption budget.
const (
	KindConfigMap = "ConfigMap"
	KindHPA       = "HorizontalPodAutoscaler"
	KindPDB       = "PodDisruptionBudget"
)

// podLabels are the pod template labels of the workloads exported so far,
// and the workloads by kind/name, to find the objects that go with them.
func (c *collector) podLabels() (pods []labels.Set, byName map[string]bool) {
	byName = map[string]bool{}
	for _, w := range c.out {
		spec, _ := w.Object["spec"].(map[string]any)
		if w.Kind == KindCronJob {
			jt, _ := spec["jobTemplate"].(map[string]any)
			spec, _ = jt["spec"].(map[string]any)
		}
		tmpl, _ := spec["template"].(map[string]any)
		meta, _ := tmpl["metadata"].(map[string]any)
		l, _ := meta["labels"].(map[string]any)
		if len(l) > 0 {
			set := labels.Set{}
			for k, v := range l {
				set[k], _ = v.(string)
			}
			pods = append(pods, set)
		}
		byName[w.Kind+"/"+w.Name] = true
	}
	return pods, byName
}

// selectsAny reports whether sel (empty selects nothing) matches any of pods.
func selectsAny(sel labels.Selector, pods []labels.Set) bool {
	if sel.Empty() {
		return false
	}
	for _, p := range pods {
		if sel.Matches(p) {
			return true
		}
	}
	return false
}

// companions adds the Services whose selector matches an exported
// workload's pods, the HPAs that scale an exported workload, the PDBs that
// cover its pods, and the ConfigMaps the CVs' spec.config names.
func (c *collector) companions(ctx context.Context, cvs []CVState) error {
	pods, byName := c.podLabels()
	services, err := c.kube.CoreV1().Services(c.ns).List(ctx, metav1.ListOptions{})
	if forbidden(err, "list services") {
		services, err = &corev1.ServiceList{}, nil
	}
	if err != nil {
		return fmt.Errorf("listing Services in %s: %w", c.ns, err)
	}
	for i := range services.Items {
		s := &services.Items[i]
		if len(s.Spec.Selector) > 0 && selectsAny(labels.SelectorFromSet(s.Spec.Selector), pods) {
			obj, err := cleanService(s)
			if err := c.add(KindService, s.Name, obj, err); err != nil {
				return err
			}
		}
	}
	hpas, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(c.ns).List(ctx, metav1.ListOptions{})
	if forbidden(err, "list horizontalpodautoscalers.autoscaling") {
		return c.pdbs(ctx, pods, cvs)
	}
	if err != nil {
		return fmt.Errorf("listing HorizontalPodAutoscalers in %s: %w", c.ns, err)
	}
	for i := range hpas.Items {
		h := &hpas.Items[i]
		if byName[h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name] {
			obj, err := cleanHPA(h)
			if err := c.add(KindHPA, h.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return c.pdbs(ctx, pods, cvs)
}

// forbiddenLogged holds the permissions already reported, so a periodic
// export logs each once per process.
var forbiddenLogged sync.Map

// forbidden reports whether err is RBAC refusing permission, and then logs
// that this kind stays out of the export: the exporter's role decides
// (the chart's state daemon has it; the controller's own role does not).
func forbidden(err error, permission string) bool {
	if !apierrors.IsForbidden(err) {
		return false
	}
	if _, logged := forbiddenLogged.LoadOrStore(permission, true); logged {
		return true
	}
	klog.InfoS("Not exported: the exporter may not "+permission+" (grant it to export them)", "permission", permission)
	return true
}

func (c *collector) pdbs(ctx context.Context, pods []labels.Set, cvs []CVState) error {
	list, err := c.kube.PolicyV1().PodDisruptionBudgets(c.ns).List(ctx, metav1.ListOptions{})
	if forbidden(err, "list poddisruptionbudgets.policy") {
		return c.configMaps(ctx, cvs)
	}
	if err != nil {
		return fmt.Errorf("listing PodDisruptionBudgets in %s: %w", c.ns, err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && selectsAny(sel, pods) {
			obj, err := cleanPDB(p)
			if err := c.add(KindPDB, p.Name, obj, err); err != nil {
				return err
			}
		}
	}
	return c.configMaps(ctx, cvs)
}

// configMaps reads the ConfigMap each CV's spec.config names; a missing
// one is not an error (the controller creates it at the next rollout).
func (c *collector) configMaps(ctx context.Context, cvs []CVState) error {
	for _, s := range cvs {
		if s.Spec.Config == nil || s.Spec.Config.Name == "" || c.seen[WorkloadKey(KindConfigMap, c.ns, s.Spec.Config.Name)] {
			continue
		}
		cm, err := c.kube.CoreV1().ConfigMaps(c.ns).Get(ctx, s.Spec.Config.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || forbidden(err, "get configmaps") {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading ConfigMap %s/%s: %w", c.ns, s.Spec.Config.Name, err)
		}
		obj, err := cleanConfigMap(cm)
		if err := c.add(KindConfigMap, cm.Name, obj, err); err != nil {
			return err
		}
	}
	return nil
}

func cleanConfigMap(cm *corev1.ConfigMap) (map[string]any, error) {
	c := corev1.ConfigMap{ObjectMeta: cleanMeta(cm.ObjectMeta), Data: cm.Data, BinaryData: cm.BinaryData, Immutable: cm.Immutable}
	return toManifest(&c, "v1", KindConfigMap)
}

func cleanHPA(h *autoscalingv2.HorizontalPodAutoscaler) (map[string]any, error) {
	c := autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: cleanMeta(h.ObjectMeta), Spec: *h.Spec.DeepCopy()}
	return toManifest(&c, "autoscaling/v2", KindHPA)
}

func cleanPDB(p *policyv1.PodDisruptionBudget) (map[string]any, error) {
	c := policyv1.PodDisruptionBudget{ObjectMeta: cleanMeta(p.ObjectMeta), Spec: *p.Spec.DeepCopy()}
	return toManifest(&c, "policy/v1", KindPDB)
}
