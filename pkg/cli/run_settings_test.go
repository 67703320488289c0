package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"cvmanager.dev/cvmanager/pkg/controller"
)

func TestSettingsParse(t *testing.T) {
	none := func(string) bool { return false }
	cases := []struct {
		name    string
		changed func(string) bool
		data    map[string]string
		want    string // "history rollback restrictions" or an error substring
	}{
		{"empty keeps the flags", none, nil, "false false 0"},
		{"keys apply", none, map[string]string{"history": "true", "rollback": " true\n", "policy-version-restriction": "prod-.*=v[0-9]+\n\nstage=.*\n"}, "true true 2"},
		{"the command line wins", func(n string) bool { return n == "history" }, map[string]string{"history": "true", "rollback": "true"}, "false true 0"},
		{"a bad bool", none, map[string]string{"history": "yes please"}, `history: strconv.ParseBool: parsing "yes please"`},
		{"a bad restriction", none, map[string]string{"policy-version-restriction": "no-equals-sign"}, "policy-version-restriction:"},
		{"an unknown key", none, map[string]string{"histroy": "true"}, "histroy: unknown key; known keys: history, rollback, policy-version-restriction"},
	}
	for _, c := range cases {
		s := settingsSource{flagChanged: c.changed}
		got, err := s.parse(c.data)
		var summary string
		if err != nil {
			summary = err.Error()
		} else {
			summary = fmt.Sprintf("%t %t %d", got.DefaultHistory, got.DefaultRollback, len(got.Restrictions))
		}
		if !strings.Contains(summary, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, summary, c.want)
		}
	}
}

// TestSettingsWatcherKeepsPreviousOnBadValue: a valid ConfigMap applies, an
// invalid one leaves the settings in force and records a Warning Event, a
// deletion brings back the flags' values.
func TestSettingsWatcherKeepsPreviousOnBadValue(t *testing.T) {
	var applied []controller.Settings
	rec := record.NewFakeRecorder(10)
	w := &settingsWatcher{source: settingsSource{flagChanged: func(string) bool { return false }},
		namespace: "kube-system", name: "cvmanager", recorder: rec,
		apply: func(s controller.Settings) { applied = append(applied, s) }}
	cm := func(data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cvmanager"}, Data: data}
	}
	w.onChange(cm(map[string]string{"rollback": "true"}))
	w.onChange(cm(map[string]string{"rollback": "true"})) // a resync: nothing new
	w.onChange(cm(map[string]string{"rollback": "maybe"}))
	w.onChange(nil)
	if len(applied) != 2 || !applied[0].DefaultRollback || applied[1].DefaultRollback {
		t.Errorf("applied %+v, want rollback on, then the flags' values after deletion", applied)
	}
	events := strings.Join([]string{<-rec.Events, <-rec.Events}, "\n")
	if !strings.Contains(events, "Normal SettingsApplied") || !strings.Contains(events, `Warning SettingsRejected Settings rejected, the previous ones are kept: rollback: strconv.ParseBool: parsing "maybe"`) {
		t.Errorf("events:\n%s", events)
	}
}

func TestParseConfigMapKey(t *testing.T) {
	if ns, name, err := parseConfigMapKey("kube-system/cvmanager"); err != nil || ns != "kube-system" || name != "cvmanager" {
		t.Errorf("got %q %q %v", ns, name, err)
	}
	for _, bad := range []string{"cvmanager", "/x", "x/", "a/b/c"} {
		if _, _, err := parseConfigMapKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A namespaced install may not read kube-system: the default settings
// ConfigMap is then skipped (nothing to watch), while one named on the
// command line must be readable.
func TestSettingsLoadWhenForbidden(t *testing.T) {
	kube := fake.NewClientset()
	kube.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("configmaps"), "cvmanager", fmt.Errorf("namespaced RBAC"))
	})
	w := &settingsWatcher{namespace: "kube-system", name: "cvmanager", apply: func(controller.Settings) { t.Error("settings applied") }}
	watch, err := w.load(context.Background(), kube, false)
	if err != nil || watch {
		t.Errorf("default ConfigMap forbidden: watch %v, err %v; want no watch and no error", watch, err)
	}
	if _, err := w.load(context.Background(), kube, true); err == nil || !strings.Contains(err.Error(), "--configmap-key kube-system/cvmanager") {
		t.Errorf("named ConfigMap forbidden: err %v, want an error naming the flag", err)
	}
}
