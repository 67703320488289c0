package faults

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestChartEnforcesContainerSecurityContext renders the chart (defaults,
// and with every optional mount on) and checks the controller pod cannot
// run as root, write its root filesystem, gain privileges or keep any
// capability. The values cannot loosen it: the same holds for every render.
func TestChartEnforcesContainerSecurityContext(t *testing.T) {
	renders := map[string][]string{
		"defaults": nil,
		"all mounts": {"--set", "triggerKeysSecret=keys", "--set", "webhookSecret=hook", "--set", "registry.caConfigMap=ca", "--set", "tls.secretName=tls",
			"--set", "notifications.webhook.secretName=hook", "--set", "notifications.slack.secretName=slack",
			"--set", "notifications.grafana.secretName=grafana"},
	}
	for name, args := range renders {
		t.Run(name, func(t *testing.T) {
			dep := renderDeployment(t, args...)
			pod := dep.Spec.Template.Spec
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Errorf("pod securityContext.runAsNonRoot is not true: %+v", pod.SecurityContext)
			}
			if pod.HostNetwork || pod.HostPID || pod.HostIPC {
				t.Error("pod shares a host namespace")
			}
			for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
				assertLockedDown(t, c)
			}
			if name == "all mounts" {
				assertGrafanaMounted(t, pod.Containers[0])
			}
		})
	}
}

// assertGrafanaMounted: the Grafana Secret is mounted read-only and both
// of its files are passed to the controller.
func assertGrafanaMounted(t *testing.T, c corev1.Container) {
	t.Helper()
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--notify-grafana-url-file=/etc/cvmanager/notify-grafana/url", "--notify-grafana-token-file=/etc/cvmanager/notify-grafana/token"} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %s: %s", want, args)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "notify-grafana" && m.ReadOnly && m.MountPath == "/etc/cvmanager/notify-grafana" {
			return
		}
	}
	t.Errorf("no read-only notify-grafana mount: %+v", c.VolumeMounts)
}

func assertLockedDown(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	checks := map[string]bool{
		"readOnlyRootFilesystem: true":    sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		"allowPrivilegeEscalation: false": sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
		"capabilities.drop: [ALL]":        sc.Capabilities != nil && len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL",
		"no capabilities added":           sc.Capabilities == nil || len(sc.Capabilities.Add) == 0,
		"not privileged":                  sc.Privileged == nil || !*sc.Privileged,
		"not runAsUser 0":                 sc.RunAsUser == nil || *sc.RunAsUser != 0,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("container %s: want %s, got %+v", c.Name, what, sc)
		}
	}
}

// renderDeployment runs `helm template` and returns the controller's
// Deployment.
func renderDeployment(t *testing.T, args ...string) *appsv1.Deployment {
	t.Helper()
	rendered := renderChart(t, "cvm", args...)
	for _, doc := range strings.Split(rendered, "\n---") {
		var meta struct{ Kind string }
		if yaml.Unmarshal([]byte(doc), &meta) != nil || meta.Kind != "Deployment" {
			continue
		}
		dep := &appsv1.Deployment{}
		if err := yaml.Unmarshal([]byte(doc), dep); err != nil {
			t.Fatal(err)
		}
		return dep
	}
	t.Fatalf("no Deployment in the rendered chart:\n%s", rendered)
	return nil
}
