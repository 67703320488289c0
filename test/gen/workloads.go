package gen

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// PodSpec is one container named "app" that stops at once.
func PodSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}, TerminationGracePeriodSeconds: ptr.To[int64](0)}
}

// LabelsFor is the label a CV named app selects its workloads by.
func LabelsFor(app string) map[string]string { return map[string]string{"app": app} }

func podLabels(app, name string) map[string]string {
	return map[string]string{"app": app, "workload": name}
}

// NewDeployment is a Deployment labelled app=app running image.
func NewDeployment(ns, name, app, image string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: LabelsFor(app)},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(replicas),
			ProgressDeadlineSeconds: ptr.To[int32](600),
			Selector:                &metav1.LabelSelector{MatchLabels: podLabels(app, name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(app, name)},
				Spec:       PodSpec(image),
			},
		},
	}
}

// NewStatefulSet is a 2-replica StatefulSet labelled app=app.
func NewStatefulSet(ns, name, app, image string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: LabelsFor(app)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](2),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: podLabels(app, name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(app, name)},
				Spec:       PodSpec(image),
			},
		},
	}
}

// NewDaemonSet is a DaemonSet labelled app=app.
func NewDaemonSet(ns, name, app, image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: LabelsFor(app)},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: podLabels(app, name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(app, name)},
				Spec:       PodSpec(image),
			},
		},
	}
}

// NewCronJob is a CronJob labelled app=app that never fires during a test.
func NewCronJob(ns, name, app, image string) *batchv1.CronJob {
	spec := PodSpec(image)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: LabelsFor(app)},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 0 1 1 *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: spec},
			}},
		},
	}
}

// NewCV is a CV following tag env-prod of repo, polling every 5 s, selecting
// workloads labelled app=name, with history on.
func NewCV(ns, name, repo string, edit ...func(*cvv1.ContainerVersionSpec)) *cvv1.ContainerVersion {
	cv := CV(ns, name)
	cv.Spec.ImageRepo = repo
	cv.Spec.Tag = "env-prod"
	cv.Spec.PollIntervalSeconds = 5
	cv.Spec.TimeoutSeconds = 60
	cv.Spec.VersionSyntax = "v[0-9]+(-[a-z]+)?"
	cv.Spec.Selector = &metav1.LabelSelector{MatchLabels: LabelsFor(name)}
	cv.Spec.History = cvv1.HistorySpec{Enabled: true}
	for _, f := range edit {
		f(&cv.Spec)
	}
	return cv
}

// Pinned is the image reference the controller writes: repo:version@digest.
func Pinned(repo, version, digest string) string {
	return repo + ":" + version + "@" + digest
}

// ColorDeployment is one side of a blue-green pair: app-color, pods
// labelled app=app and color=color, selected by the CV through app=app.
func ColorDeployment(ns, app, color, image string, replicas int32) *appsv1.Deployment {
	d := NewDeployment(ns, app+"-"+color, app, image, replicas)
	d.Spec.Selector.MatchLabels["color"] = color
	d.Spec.Template.Labels["color"] = color
	return d
}

// BlueGreenServices are the live Service app and the verification Service
// app-verify, both selecting the blue side.
func BlueGreenServices(ns, app string) []*corev1.Service {
	var services []*corev1.Service
	for _, name := range []string{app, app + "-verify"} {
		services = append(services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": app, "color": "blue"},
				Ports:    []corev1.ServicePort{{Port: 80}},
			},
		})
	}
	return services
}

// BlueGreen is a NewCV edit: the ServiceBlueGreen strategy over the
// Services of BlueGreenServices, switching on label color, scaling the old
// side down, verified by the verifier image.
func BlueGreen(app, verifier string) func(*cvv1.ContainerVersionSpec) {
	return func(s *cvv1.ContainerVersionSpec) {
		s.Strategy = cvv1.StrategySpec{
			Kind: cvv1.StrategyServiceBlueGreen,
			BlueGreen: &cvv1.BlueGreenSpec{
				ServiceName: app, VerificationServiceName: app + "-verify",
				LabelNames: []string{"color"}, ScaleDown: true,
			},
			Verify: []cvv1.VerifySpec{{Kind: "Image", Image: verifier}},
		}
	}
}
