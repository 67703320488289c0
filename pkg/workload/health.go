package workload

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// OOMKillThreshold is how many OOMKilled restarts fail a rollout: one may be
// a spike, three in a row is the new version.
const OOMKillThreshold = 3

// stuckReasons are container waiting reasons a rollout does not recover
// from by waiting.
var stuckReasons = map[string]bool{
	"ImagePullBackOff": true, "ErrImagePull": true, "CrashLoopBackOff": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "InvalidImageName": true,
}

// Health is the verdict on a workload's rollout to an image.
type Health struct {
	// Done: every desired replica runs the image, ready and available.
	Done bool
	// Failed: the rollout will not finish by waiting.
	Failed bool
	// Reason is machine-readable (ProgressDeadlineExceeded, ImagePullBackOff, ...).
	Reason string
	// Message names the workload or pod and what is wrong.
	Message                 string
	Updated, Ready, Desired int32
}

// Evaluate judges the rollout of w to image from its status and its pods.
func Evaluate(w Workload, pods []*corev1.Pod, container, image string) Health {
	if current, _ := ContainerImage(w, container); current != image {
		return Health{Message: fmt.Sprintf("%s not yet updated to %s", w.Key(), image)}
	}
	if h, stuck := podFailure(w, pods, container, image); stuck {
		return h
	}
	switch o := w.Object.(type) {
	case *appsv1.Deployment:
		return deploymentHealth(o)
	case *appsv1.StatefulSet:
		return statefulSetHealth(o)
	case *appsv1.DaemonSet:
		return daemonSetHealth(o)
	case *batchv1.CronJob:
		// No pods to wait for: the next scheduled Job uses the new template.
		return Health{Done: true, Message: "CronJob template updated"}
	}
	return Health{Failed: true, Reason: "UnsupportedKind", Message: string(w.Kind)}
}

func deploymentHealth(d *appsv1.Deployment) Health {
	desired := replicas(d.Spec.Replicas)
	s := d.Status
	h := Health{Updated: s.UpdatedReplicas, Ready: s.AvailableReplicas, Desired: desired}
	if s.ObservedGeneration < d.Generation {
		h.Message = "Deployment/" + d.Name + " not yet observed by its controller"
		return h
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			h.Failed, h.Reason, h.Message = true, "ProgressDeadlineExceeded", "Deployment/"+d.Name+": "+c.Message
			return h
		}
	}
	h.Done = s.UpdatedReplicas == desired && s.Replicas == desired && s.AvailableReplicas >= desired && s.UnavailableReplicas == 0
	return h
}

// statefulSetHealth waits for a RollingUpdate to reach every replica. With
// the OnDelete strategy pods change only when deleted, so an updated and
// observed template is as far as a rollout can go.
func statefulSetHealth(s *appsv1.StatefulSet) Health {
	desired := replicas(s.Spec.Replicas)
	st := s.Status
	h := Health{Updated: st.UpdatedReplicas, Ready: st.ReadyReplicas, Desired: desired}
	if st.ObservedGeneration < s.Generation {
		h.Message = "StatefulSet/" + s.Name + " not yet observed by its controller"
		return h
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		h.Done = true
		return h
	}
	h.Done = st.UpdatedReplicas == desired && st.ReadyReplicas == desired && st.CurrentRevision == st.UpdateRevision
	return h
}

func daemonSetHealth(d *appsv1.DaemonSet) Health {
	st := d.Status
	h := Health{Updated: st.UpdatedNumberScheduled, Ready: st.NumberAvailable, Desired: st.DesiredNumberScheduled}
	if st.ObservedGeneration < d.Generation {
		h.Message = "DaemonSet/" + d.Name + " not yet observed by its controller"
		return h
	}
	h.Done = st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberAvailable == st.DesiredNumberScheduled && st.NumberUnavailable == 0
	return h
}

// podFailure finds pods of the new image stuck for good. Pods of the old
// image are ignored: their trouble is not the new version's.
func podFailure(w Workload, pods []*corev1.Pod, container, image string) (Health, bool) {
	for _, pod := range pods {
		if !podRuns(pod, container, image) {
			continue
		}
		for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			if reason := stuckReason(cs); reason != "" {
				return Health{Failed: true, Reason: reason,
					Message: fmt.Sprintf("%s: pod %s container %s is %s", w.Key(), pod.Name, cs.Name, reason)}, true
			}
		}
	}
	return Health{}, false
}

func stuckReason(cs corev1.ContainerStatus) string {
	if cs.State.Waiting != nil && stuckReasons[cs.State.Waiting.Reason] {
		return cs.State.Waiting.Reason
	}
	if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" && cs.RestartCount >= OOMKillThreshold {
		return "OOMKilled"
	}
	return ""
}

func podRuns(pod *corev1.Pod, container, image string) bool {
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if c.Name == container {
			return c.Image == image
		}
	}
	return false
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}
