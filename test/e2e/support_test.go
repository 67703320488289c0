package e2e

import (
	"context"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/metrics"
)

// metricsCapture gives a test access to a controller's metrics.
type metricsCapture struct{ m *metrics.Metrics }

func newMetricsCapture() *metricsCapture { return &metricsCapture{m: metrics.New()} }

func (c *metricsCapture) use(o *controller.Options) { o.Metrics = c.m }

func (c *metricsCapture) syncers() float64 {
	var out dto.Metric
	_ = c.m.Syncers.Write(&out)
	return out.GetGauge().GetValue()
}

type elected struct {
	state *controller.LeaderState
	stop  func()
}

// startElected runs a controller behind leader election, as `cvmanager run`
// does, under the shipped RBAC.
func (e *env) startElected(reg *testRegistry, le controller.LeaderElection, identity string) *elected {
	le.Identity = identity
	kube := kubernetes.NewForConfigOrDie(controllerConfig)
	ctrl := controller.New(kube, versioned.NewForConfigOrDie(controllerConfig), controller.Options{
		Namespace: e.ns, Resolver: reg.resolver(e.t), Metrics: metrics.New(), ProgressInterval: 500 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(e.ctx)
	state := &controller.LeaderState{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = controller.RunLeaderElected(ctx, kube, le, state, ctrl.Run)
	}()
	stop := func() { cancel(); <-done }
	e.t.Cleanup(stop)
	return &elected{state: state, stop: stop}
}
