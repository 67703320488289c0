package registry

import (
	"context"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/localregistry"
)

// startRegistry starts an in-process Distribution registry closed with t.
func startRegistry(t *testing.T, opts ...localregistry.Option) *localregistry.Registry {
	return localregistry.StartForTest(t, opts...)
}

// startProxy puts a fault proxy in front of reg.
func startProxy(t *testing.T, reg *localregistry.Registry) *faultproxy.Proxy {
	return faultproxy.StartForTest(t, reg.URL())
}

func push(t *testing.T, reg *localregistry.Registry, path string, tags ...string) string {
	t.Helper()
	d, err := reg.Push(path, tags...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// insecureOCI reaches every registry over plain HTTP, as tests need.
func insecureOCI() *OCI { return NewOCI(OCIOptions{Insecure: true, NoRetries: true}) }
