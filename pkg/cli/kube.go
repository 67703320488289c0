package cli

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeFlags resolves the cluster connection the way kubectl does: --kubeconfig
// (or the original cvmanager's --k8s-config), --context, $KUBECONFIG,
// ~/.kube/config, and finally the in-cluster service account.
type KubeFlags struct {
	Kubeconfig string
	Context    string
}

// AddFlags registers the connection flags.
func (k *KubeFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.Kubeconfig, "kubeconfig", "", "path to a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fs.StringVar(&k.Kubeconfig, "k8s-config", "", "alias of --kubeconfig, the original cvmanager's name")
	fs.StringVar(&k.Context, "context", "", "kubeconfig context to use")
}

// RESTConfig returns the client configuration the flags select.
func (k *KubeFlags) RESTConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.Context}
	// The deferred loader falls back to the in-cluster config when no
	// kubeconfig is found, which is what a pod needs.
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cannot load Kubernetes client configuration: %w", err)
	}
	return cfg, nil
}

// Namespace returns the namespace of the selected kubeconfig context, or
// "default" when it names none.
func (k *KubeFlags) Namespace() string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.Context}
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}
