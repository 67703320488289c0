package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/kubeclient"
	"cvmanager.dev/cvmanager/pkg/metrics"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// newCRSyncCommand runs the syncer of one CV outside the controller: out of
// cluster, or in a pod with its own service account (per-CV cloud
// credentials). The in-cluster controller should exclude that CV with
// --cv-selector so the two do not both act on it.
func newCRSyncCommand(kube *KubeFlags) *cobra.Command {
	var namespace, name, provider string
	var registry RegistryFlags
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run the syncer of one ContainerVersion standalone",
		Long: `Runs the syncer of one ContainerVersion: polls its tag and rolls its
workloads out, as ` + "`cvmanager run`" + ` does for every CV.

--provider is the original cvmanager's flag. cvmanager chooses the registry
API from the repository's host, so the flag is optional; when given it is
checked against spec.imageRepo: ecr needs an ECR host
(<account>.dkr.ecr.<region>.amazonaws.com), dockerhub any other (Docker Hub
or another Docker/OCI v2 registry, served by the same client).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validProvider(provider); err != nil {
				return err
			}
			return runOneSyncer(cmd.Context(), kube, &registry, namespace, name, provider)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	cmd.Flags().StringVar(&name, "cv", "", "name of the ContainerVersion (required)")
	cmd.Flags().StringVar(&provider, "provider", "", "registry provider, as in the original: ecr or dockerhub (default: chosen from spec.imageRepo's host, which it must match)")
	_ = cmd.MarkFlagRequired("cv")
	registry.AddFlags(cmd.Flags())
	cmd.AddCommand(newCRSyncStatusCommand(kube))
	return cmd
}

func runOneSyncer(ctx context.Context, kube *KubeFlags, registry *RegistryFlags, namespace, name, provider string) error {
	if namespace == "" {
		namespace = kube.Namespace()
	}
	kubeClient, cvClient, err := clients(kube)
	if err != nil {
		return err
	}
	cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("ContainerVersion %s/%s: %w", namespace, name, err)
	}
	if err := checkProvider(provider, cv.Spec.ImageRepo); err != nil {
		return fmt.Errorf("ContainerVersion %s/%s: %w", namespace, name, err)
	}
	m := metrics.New()
	resolver, err := registry.NewResolver(m)
	if err != nil {
		return err
	}
	factories := controller.NewFactories(kubeClient, cvClient, controller.Scope{Namespace: namespace, Name: name})
	ctrl := controller.New(kubeClient, cvClient, factories.Informers(), controller.NewRecorder(kubeClient, 1), clock.RealClock{}, // one CV: one sender
		controller.Options{Namespace: namespace, Workers: 1, Resolver: resolver, Metrics: m})
	factories.Start(ctx.Done())
	defer factories.Shutdown()
	return ctrl.Run(ctx)
}

// newCRSyncStatusCommand is the standalone syncer's liveness probe, as in the
// original: it succeeds when the CV was polled successfully within --by.
func newCRSyncStatusCommand(kube *KubeFlags) *cobra.Command {
	var namespace, name string
	var by time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Liveness check: succeed when the syncer polled recently",
		Long: `Succeeds when status.lastPolled of the ContainerVersion is within --by.
A standalone syncer writes lastPolled twice per spec.livenessSeconds, so --by
defaults to livenessSeconds; a shorter --by can fail on a healthy syncer. CVs
synced by ` + "`cvmanager run`" + ` have lastPolled written only every
--last-polled-interval: probe the controller's /healthz instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if namespace == "" {
				namespace = kube.Namespace()
			}
			_, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).Get(cmd.Context(), name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("ContainerVersion %s/%s: %w", namespace, name, err)
			}
			window := by
			if window == 0 {
				window = time.Duration(cv.Spec.LivenessSeconds) * time.Second
			}
			if cv.Status.LastPolled == nil {
				return fmt.Errorf("%s/%s has never been polled", namespace, name)
			}
			if age := time.Since(cv.Status.LastPolled.Time); age > window {
				return fmt.Errorf("%s/%s last polled %s ago, more than %s", namespace, name, age.Round(time.Second), window)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s/%s polled at %s\n", namespace, name, cv.Status.LastPolled.Format(time.RFC3339))
			return err
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	cmd.Flags().StringVar(&name, "cv", "", "name of the ContainerVersion (required)")
	cmd.Flags().DurationVar(&by, "by", 0, "maximum age of the last successful poll (default: spec.livenessSeconds)")
	_ = cmd.MarkFlagRequired("cv")
	return cmd
}

func clients(kube *KubeFlags) (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := kube.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	return newClients(cfg)
}

// newClients builds both clients from one config, named cvmanager in the
// apiserver's audit log and metrics.
func newClients(cfg *rest.Config) (kubernetes.Interface, versioned.Interface, error) {
	cfg.UserAgent = "cvmanager"
	kubeClient, err := kubernetes.NewForConfig(kubeclient.Protobuf(cfg))
	if err != nil {
		return nil, nil, err
	}
	cvClient, err := versioned.NewForConfig(cfg)
	return kubeClient, cvClient, err
}

// The original cvmanager's --provider values.
const (
	providerECR       = "ecr"
	providerDockerHub = "dockerhub"
)

func validProvider(provider string) error {
	switch provider {
	case "", providerECR, providerDockerHub:
		return nil
	}
	return fmt.Errorf("--provider %q: use ecr or dockerhub, or leave it out to choose from the repository's host", provider)
}

// checkProvider says whether --provider fits the repository's host: ecr
// needs an ECR host, dockerhub any host served by the v2 client. A
// mismatch is an error naming both, since the original would have polled
// the wrong API.
func checkProvider(provider, repo string) error {
	if provider == "" {
		return nil
	}
	parsed, err := registry.ParseRepository(repo, false)
	if err != nil {
		return fmt.Errorf("--provider %s: spec.imageRepo: %w", provider, err)
	}
	host := parsed.RegistryStr()
	isECR := registry.KindOf(host) == registry.KindECR
	switch {
	case provider == providerECR && !isECR:
		return fmt.Errorf("--provider ecr does not match spec.imageRepo %q: its host %s is not an ECR registry "+
			"(<account>.dkr.ecr.<region>.amazonaws.com); use --provider dockerhub or leave --provider out", repo, host)
	case provider == providerDockerHub && isECR:
		return fmt.Errorf("--provider dockerhub does not match spec.imageRepo %q: its host %s is an ECR registry; "+
			"use --provider ecr or leave --provider out", repo, host)
	}
	return nil
}
