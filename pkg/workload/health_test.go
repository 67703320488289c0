package workload

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	newImage = "reg:5000/app:v2@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	oldImage = "reg:5000/app:v1@sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
}

// deployment builds a Deployment at generation 2 with the given status.
func deployment(image string, status appsv1.DeploymentStatus) Workload {
	return Workload{Deployment, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: template(image)},
		Status:     status,
	}}
}

func pod(image string, waiting string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Spec: template(image).Spec}
	if waiting != "" {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}
	}
	return p
}

func TestEvaluate(t *testing.T) {
	done := appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2}
	rolling := appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2, UnavailableReplicas: 1}
	deadline := rolling
	deadline.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "too slow"}}
	stale := done
	stale.ObservedGeneration = 1
	oom := pod(newImage, "")
	oom.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 3, LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled"}}}}

	sts := func(st appsv1.StatefulSetStatus, strategy appsv1.StatefulSetUpdateStrategyType) Workload {
		return Workload{StatefulSet, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: 1},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Template: template(newImage), UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: strategy}}, Status: st}}
	}
	ds := func(st appsv1.DaemonSetStatus) Workload {
		return Workload{DaemonSet, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: 1}, Spec: appsv1.DaemonSetSpec{Template: template(newImage)}, Status: st}}
	}
	cron := Workload{CronJob, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(newImage)}}}}}

	cases := []struct {
		name       string
		w          Workload
		pods       []*corev1.Pod
		wantDone   bool
		wantFailed bool
		wantReason string
	}{
		{"deployment done", deployment(newImage, done), nil, true, false, ""},
		{"deployment template not updated", deployment(oldImage, done), nil, false, false, ""},
		{"deployment rolling", deployment(newImage, rolling), nil, false, false, ""},
		{"deployment stale observedGeneration", deployment(newImage, stale), nil, false, false, ""},
		{"deployment deadline exceeded", deployment(newImage, deadline), nil, false, true, "ProgressDeadlineExceeded"},
		{"new pod ImagePullBackOff", deployment(newImage, rolling), []*corev1.Pod{pod(newImage, "ImagePullBackOff")}, false, true, "ImagePullBackOff"},
		{"new pod CrashLoopBackOff", deployment(newImage, rolling), []*corev1.Pod{pod(newImage, "CrashLoopBackOff")}, false, true, "CrashLoopBackOff"},
		{"new pod CreateContainerConfigError", deployment(newImage, rolling), []*corev1.Pod{pod(newImage, "CreateContainerConfigError")}, false, true, "CreateContainerConfigError"},
		{"new pod OOMKilled 3 times", deployment(newImage, rolling), []*corev1.Pod{oom}, false, true, "OOMKilled"},
		{"old pod stuck does not count", deployment(newImage, rolling), []*corev1.Pod{pod(oldImage, "CrashLoopBackOff")}, false, false, ""},
		{"new pod ContainerCreating is just slow", deployment(newImage, rolling), []*corev1.Pod{pod(newImage, "ContainerCreating")}, false, false, ""},
		{"statefulset done", sts(appsv1.StatefulSetStatus{ObservedGeneration: 1, UpdatedReplicas: 2, ReadyReplicas: 2, CurrentRevision: "r2", UpdateRevision: "r2"}, appsv1.RollingUpdateStatefulSetStrategyType), nil, true, false, ""},
		{"statefulset revision pending", sts(appsv1.StatefulSetStatus{ObservedGeneration: 1, UpdatedReplicas: 2, ReadyReplicas: 2, CurrentRevision: "r1", UpdateRevision: "r2"}, appsv1.RollingUpdateStatefulSetStrategyType), nil, false, false, ""},
		{"statefulset OnDelete", sts(appsv1.StatefulSetStatus{ObservedGeneration: 1}, appsv1.OnDeleteStatefulSetStrategyType), nil, true, false, ""},
		{"daemonset done", ds(appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1}), nil, true, false, ""},
		{"daemonset unavailable", ds(appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberUnavailable: 1}), nil, false, false, ""},
		{"cronjob template updated", cron, nil, true, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := Evaluate(tc.w, tc.pods, "app", newImage)
			if h.Done != tc.wantDone || h.Failed != tc.wantFailed || h.Reason != tc.wantReason {
				t.Errorf("Evaluate = %+v; want done=%v failed=%v reason=%q", h, tc.wantDone, tc.wantFailed, tc.wantReason)
			}
			if h.Failed && !strings.Contains(h.Message, tc.w.Name()) {
				t.Errorf("failure message does not name the workload: %q", h.Message)
			}
		})
	}
}

func TestPinnedImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		repo, version, digest, want string
		wantErr                     bool
	}{
		{"127.0.0.1:5000/team/app", "v1", digest, "127.0.0.1:5000/team/app:v1@" + digest, false},
		{"nginx", "", digest, "nginx@" + digest, false},
		{"nginx", "1.25", "sha256:short", "", true},
		{"nginx", "1.25", "md5:" + strings.Repeat("a", 64), "", true},
		{"nginx@sha256:x", "1", digest, "", true},
	}
	for _, tc := range cases {
		got, err := PinnedImage(tc.repo, tc.version, tc.digest)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("PinnedImage(%q,%q,%q) = %q,%v", tc.repo, tc.version, tc.digest, got, err)
		}
	}
	if got := DigestOf("nginx:1@" + digest); got != digest {
		t.Errorf("DigestOf = %q", got)
	}
}

func TestContainerImageAndPatch(t *testing.T) {
	w := Workload{Deployment, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "m:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "a:1"}},
		}}}}}
	if img, ok := ContainerImage(w, "migrate"); !ok || img != "m:1" {
		t.Errorf("init container: %q %v", img, ok)
	}
	if _, ok := ContainerImage(w, "absent"); ok {
		t.Error("found an absent container")
	}
	patch, err := imagePatch(w, "migrate", "m:2")
	if err != nil || string(patch) != `{"metadata":{"annotations":{"image.cvmanager.dev/migrate":"m:2"}},"spec":{"template":{"spec":{"initContainers":[{"image":"m:2","name":"migrate"}]}}}}` {
		t.Errorf("init container patch: %s %v", patch, err)
	}
	cron := Workload{CronJob, &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template("a:1")}}}}}
	patch, _ = imagePatch(cron, "app", "a:2")
	if string(patch) != `{"metadata":{"annotations":{"image.cvmanager.dev/app":"a:2"}},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"a:2","name":"app"}]}}}}}}` {
		t.Errorf("cronjob patch: %s", patch)
	}
}
