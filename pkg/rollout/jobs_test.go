package rollout

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

const digestA = "sha256:aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
const digestB = "sha256:bbbbbbbbbbbb1111111111111111111111111111111111111111111111111111"

func TestJobNameIsStablePerVersionAndFitsALabel(t *testing.T) {
	long := strings.Repeat("a", 60)
	cases := []struct{ cv, phase, step string }{
		{"web", PhaseMigrate, "schema"},
		{long, PhaseVerifyAfter, "1"},
		{long, PhaseVerifyAfter, "2"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		a := JobName(c.cv, c.phase, c.step, digestA)
		if a != JobName(c.cv, c.phase, c.step, digestA) {
			t.Errorf("name of %v not deterministic", c)
		}
		b := JobName(c.cv, c.phase, c.step, digestB)
		if len(a) > 63 || len(b) > 63 || a == b {
			t.Errorf("%v: %q / %q: too long or not distinct per digest", c, a, b)
		}
		if seen[a] {
			t.Errorf("%v: %q collides with another step", c, a)
		}
		seen[a] = true
	}
}

func TestMigrationFromTemplateJobGetsTheNewImageAndLosesGeneratedLabels(t *testing.T) {
	tmpl := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "migrate-tmpl"},
		Spec: batchv1.JobSpec{
			Suspend:  ptr.To(true),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "x"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"batch.kubernetes.io/controller-uid": "x", "job-name": "migrate-tmpl", "team": "db"}},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "wait", Image: "busybox"}},
					Containers:     []corev1.Container{{Name: "app", Image: "old"}, {Name: "proxy", Image: "proxy:1"}},
				},
			},
		},
	}
	jobs := &Jobs{Client: fake.NewClientset(tmpl)}
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}}
	cv.Spec.Container.Name = "app"
	spec, err := jobs.migrationJobSpec(context.Background(), cv, Target{Image: "repo:v2@" + digestA}, cvv1.PreRolloutJob{Name: "schema", TemplateJobName: "migrate-tmpl"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Selector != nil || spec.Template.Labels["job-name"] != "" || spec.Template.Labels["team"] != "db" {
		t.Errorf("selector %v labels %v: generated labels must go, own labels stay", spec.Selector, spec.Template.Labels)
	}
	if got := spec.Template.Spec.Containers; got[0].Image != "repo:v2@"+digestA || got[1].Image != "proxy:1" {
		t.Errorf("containers %+v: only the named container gets the new image", got)
	}
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q", spec.Template.Spec.RestartPolicy)
	}
}

func TestMigrationTemplateMistakesAreExplained(t *testing.T) {
	running := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "live"}}
	jobs := &Jobs{Client: fake.NewClientset(running)}
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"}}
	cv.Spec.Container.Name = "app"
	inline := &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "other", Image: "x"}}}}}}
	cases := map[string]cvv1.PreRolloutJob{
		"not suspended":             {Name: "a", TemplateJobName: "live"},
		"not found":                 {Name: "b", TemplateJobName: "missing"},
		`container "app" not found`: {Name: "c", Template: inline},
	}
	for want, spec := range cases {
		_, err := jobs.migrationJobSpec(context.Background(), cv, Target{Image: "repo:v2@" + digestA}, spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", spec.Name, err, want)
		}
	}
}
