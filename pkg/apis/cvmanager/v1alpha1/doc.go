// Package v1alpha1 holds the ContainerVersion API: a request to keep a set of
// workloads running the image that a registry tag points to.
//
// The spec field names are those of the original cvmanager/kcd so an existing
// resource converts by changing its apiVersion.
//
// +k8s:deepcopy-gen=package
// +groupName=cvmanager.dev
package v1alpha1
