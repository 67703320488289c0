package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/policy"
)

// DefaultSettingsConfigMap is the original cvmanager's --configmap-key.
const DefaultSettingsConfigMap = "kube-system/cvmanager"

// Keys of the settings ConfigMap: the names of the `run` flags they stand
// for, so "a flag given on the command line wins" needs no mapping table.
const (
	settingHistory      = "history"
	settingRollback     = "rollback"
	settingRestrictions = "policy-version-restriction"
)

// settingKeys are the keys the ConfigMap may hold; any other is refused so
// a typo is reported instead of silently doing nothing.
var settingKeys = []string{settingHistory, settingRollback, settingRestrictions}

// Event reasons on the settings ConfigMap.
const (
	ReasonSettingsApplied  = "SettingsApplied"
	ReasonSettingsRejected = "SettingsRejected"
)

// settingsSource turns the settings ConfigMap into controller.Settings: the
// flags' values, overridden by the ConfigMap's keys except where the flag
// was given on the command line.
type settingsSource struct {
	flags       controller.Settings
	flagChanged func(name string) bool
}

// parse validates data and merges it over the flags. Nothing is applied
// unless every key is valid.
func (s settingsSource) parse(data map[string]string) (controller.Settings, error) {
	out := s.flags
	var problems []string
	for _, key := range sortedKeys(data) {
		value := strings.TrimSpace(data[key])
		if s.flagChanged(key) {
			continue // the command line wins
		}
		var err error
		switch key {
		case settingHistory:
			out.DefaultHistory, err = strconv.ParseBool(value)
		case settingRollback:
			out.DefaultRollback, err = strconv.ParseBool(value)
		case settingRestrictions:
			out.Restrictions, err = policy.ParseRestrictions(nonEmptyLines(value))
		default:
			err = fmt.Errorf("unknown key; known keys: %s", strings.Join(settingKeys, ", "))
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", key, err))
		}
	}
	if len(problems) > 0 {
		return controller.Settings{}, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// parseConfigMapKey splits "namespace/name".
func parseConfigMapKey(key string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(key, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("--configmap-key %q: want namespace/name", key)
	}
	return namespace, name, nil
}

// settingsWatcher keeps a controller's settings equal to the ConfigMap's,
// through an informer on that one ConfigMap. A ConfigMap that fails
// validation is reported (Warning Event on it, log) and the settings in
// force are kept; a deleted ConfigMap brings back the flags' values.
type settingsWatcher struct {
	source    settingsSource
	namespace string
	name      string
	apply     func(controller.Settings)
	recorder  record.EventRecorder

	mu   sync.Mutex
	last string // the ConfigMap content last acted on, to skip resyncs
}

func (w *settingsWatcher) onChange(cm *corev1.ConfigMap) {
	w.mu.Lock()
	defer w.mu.Unlock()
	content := "<deleted>"
	if cm != nil {
		content = fmt.Sprint(cm.Data)
	}
	if content == w.last {
		return
	}
	w.last = content
	if cm == nil {
		klog.InfoS("Settings ConfigMap deleted; the flags' values apply", "configMap", w.namespace+"/"+w.name)
		w.apply(w.source.flags)
		return
	}
	settings, err := w.source.parse(cm.Data)
	if err != nil {
		klog.ErrorS(err, "Settings ConfigMap rejected; the settings in force are kept", "configMap", klog.KObj(cm))
		w.recorder.Eventf(cm, corev1.EventTypeWarning, ReasonSettingsRejected, "Settings rejected, the previous ones are kept: %v", err)
		return
	}
	klog.InfoS("Settings applied", "configMap", klog.KObj(cm), "history", settings.DefaultHistory,
		"rollback", settings.DefaultRollback, "restrictions", len(settings.Restrictions))
	w.recorder.Eventf(cm, corev1.EventTypeNormal, ReasonSettingsApplied, "Settings applied: history=%t rollback=%t restrictions=%d",
		settings.DefaultHistory, settings.DefaultRollback, len(settings.Restrictions))
	w.apply(settings)
}

// load reads the ConfigMap once and applies it, before the controller
// starts, so the first sync already uses it. A missing ConfigMap is an
// error only when required (a --configmap-key other than the default).
//
// watch is false when the default ConfigMap may not be read at all: a
// namespaced install has no rights in kube-system, and there the flags'
// values apply as if the ConfigMap were missing.
func (w *settingsWatcher) load(ctx context.Context, kube kubernetes.Interface, required bool) (watch bool, err error) {
	cm, err := kube.CoreV1().ConfigMaps(w.namespace).Get(ctx, w.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && !required:
		klog.InfoS("No settings ConfigMap; the flags' values apply", "configMap", w.namespace+"/"+w.name)
		w.last = "<deleted>"
		return true, nil
	case apierrors.IsForbidden(err) && !required:
		klog.InfoS("The default settings ConfigMap may not be read by this install (namespaced RBAC); the flags' values apply. "+
			"Name one it may read with --configmap-key, or pass --configmap-key= to skip it", "configMap", w.namespace+"/"+w.name)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("--configmap-key %s/%s: %w", w.namespace, w.name, err)
	}
	w.onChange(cm)
	return true, nil
}

// run watches the ConfigMap until ctx ends.
func (w *settingsWatcher) run(ctx context.Context, kube kubernetes.Interface) {
	byName := fields.OneTermEqualSelector("metadata.name", w.name).String()
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return kube.CoreV1().ConfigMaps(w.namespace).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return kube.CoreV1().ConfigMaps(w.namespace).Watch(ctx, o)
		},
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw, ObjectType: &corev1.ConfigMap{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.onChange(obj.(*corev1.ConfigMap)) },
			UpdateFunc: func(_, obj any) { w.onChange(obj.(*corev1.ConfigMap)) },
			DeleteFunc: func(any) { w.onChange(nil) },
		},
	})
	informer.Run(ctx.Done())
}

// newSettingsRecorder records Events on the settings ConfigMap.
func newSettingsRecorder(ctx context.Context, kube kubernetes.Interface) record.EventRecorder {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cvmanager"})
}
