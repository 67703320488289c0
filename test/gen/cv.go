package gen

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// CVOption changes a test ContainerVersion.
type CVOption func(*cvv1.ContainerVersion)

// CV builds a minimal valid ContainerVersion selecting app=<name> and
// updating container "app"; options adjust it for each test case.
func CV(namespace, name string, opts ...CVOption) *cvv1.ContainerVersion {
	cv := &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: cvv1.ContainerVersionSpec{
			ImageRepo: "127.0.0.1:5000/team/app",
			Tag:       "env-prod",
			Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Container: cvv1.ContainerSpec{Name: "app"},
		},
	}
	for _, opt := range opts {
		opt(cv)
	}
	return cv
}

// WithSpec edits the spec in place.
func WithSpec(edit func(*cvv1.ContainerVersionSpec)) CVOption {
	return func(cv *cvv1.ContainerVersion) { edit(&cv.Spec) }
}
