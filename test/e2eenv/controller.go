package e2eenv

import (
	"context"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	cvlisters "cvmanager.dev/cvmanager/pkg/generated/listers/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// Controller is a controller under test wired as `cvmanager run` wires it:
// the test owns the informer factories, the recorder and the clock.
type Controller struct {
	*controller.Controller
	Factories *controller.Factories
	Kube      kubernetes.Interface
}

// NewController builds a controller watching opts.Namespace with a real
// clock and an event recorder writing to the API.
func NewController(kube kubernetes.Interface, cvClient versioned.Interface, opts controller.Options) *Controller {
	return NewControllerWith(kube, cvClient, opts, controller.NewRecorder(kube, controller.EventSenders), clock.RealClock{})
}

// NewControllerWith is NewController with the recorder and clock given.
func NewControllerWith(kube kubernetes.Interface, cvClient versioned.Interface, opts controller.Options,
	recorder record.EventRecorder, clk clock.Clock) *Controller {
	f := controller.NewFactories(kube, cvClient, controller.Scope{Namespace: opts.Namespace})
	ctrl := controller.New(kube, cvClient, f.Informers(), recorder, clk, opts)
	return &Controller{Controller: ctrl, Factories: f, Kube: kube}
}

// Run starts the informers and runs the controller until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.Factories.Start(ctx.Done())
	defer c.Factories.Shutdown()
	return c.Controller.Run(ctx)
}

// CVLister reads CVs from the test controller's cache.
func (c *Controller) CVLister() cvlisters.ContainerVersionLister {
	return c.Factories.Informers().CVs.Lister()
}

// WorkloadListers reads workloads from the test controller's caches.
func (c *Controller) WorkloadListers() workload.Listers { return c.Factories.WorkloadListers() }
