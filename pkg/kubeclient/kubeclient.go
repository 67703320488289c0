// Package kubeclient holds how cvmanager's clients talk to the apiserver.
package kubeclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// Protobuf is a copy of cfg speaking protobuf to the apiserver, with JSON
// as the fallback, as kube-controller-manager does. Built-in objects
// (workloads, ConfigMaps, Events, and the watches of them) cost both sides
// less to encode and decode than in JSON, and a watch in protobuf shares
// the encoding the apiserver already made for the cluster's other
// controllers, which matters when a burst of rollouts meets a busy
// apiserver. Custom resources have no protobuf encoding: a client of CVs
// keeps cfg as it is.
func Protobuf(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}
