package rollout

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// selectorOf converts spec.selector. Admission guarantees a non-empty,
// well-formed selector, so a conversion error selects nothing rather than
// everything.
func selectorOf(cv *cvv1.ContainerVersion) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(cv.Spec.Selector)
	if err != nil || sel.Empty() {
		return labels.Nothing()
	}
	return sel
}
