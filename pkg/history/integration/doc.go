// Package integration tests pkg/history against a real kube-apiserver (and
// the garbage collector of a real kube-controller-manager). It lives apart
// from pkg/history so that package's unit tests and fuzzing need no cluster.
package integration
