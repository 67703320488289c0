package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
)

// DefaultKubeconfigKey is the Secret key read when clusterSecretRef.key is empty.
const DefaultKubeconfigKey = "kubeconfig"

// readTimeout bounds one read of a source: an unreachable cluster must
// not hold a sync for long.
const readTimeout = 10 * time.Second

// ErrUnsafeKubeconfig marks a kubeconfig from a Secret that would make the
// controller run a program or read its own files (exec and auth-provider
// plugins, tokenFile, certificate paths): a CV author could otherwise send
// the controller's service-account token to a server of their choosing.
var ErrUnsafeKubeconfig = errors.New("unsafe kubeconfig")

// KubeconfigFromSecret returns the kubeconfig under key (default
// "kubeconfig") of secret.
func KubeconfigFromSecret(secret *corev1.Secret, key string) ([]byte, error) {
	if key == "" {
		key = DefaultKubeconfigKey
	}
	data, ok := secret.Data[key]
	if !ok || len(data) == 0 {
		return nil, fmt.Errorf("Secret %s/%s has no key %q", secret.Namespace, secret.Name, key)
	}
	return data, nil
}

// RESTConfigFromSecret parses a kubeconfig taken from a Secret, refusing
// what would run or read anything on the controller's side; the current
// context is used.
func RESTConfigFromSecret(kubeconfig []byte) (*rest.Config, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parsing kubeconfig: %w", err)
	}
	if err := checkSafe(cfg); err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, cfg.CurrentContext, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	rc.Timeout = readTimeout
	rc.QPS, rc.Burst = 5, 10
	rc.UserAgent = "cvmanager-fleet-reader"
	return rc, nil
}

// checkSafe refuses plugins and file references in a kubeconfig.
func checkSafe(cfg *clientcmdapi.Config) error {
	for name, u := range cfg.AuthInfos {
		switch {
		case u.Exec != nil:
			return fmt.Errorf("%w: user %q runs an exec plugin; give a token or a client certificate inline", ErrUnsafeKubeconfig, name)
		case u.AuthProvider != nil:
			return fmt.Errorf("%w: user %q uses an auth-provider plugin; give a token or a client certificate inline", ErrUnsafeKubeconfig, name)
		case u.TokenFile != "" || u.ClientCertificate != "" || u.ClientKey != "":
			return fmt.Errorf("%w: user %q names files; inline them (token, client-certificate-data, client-key-data)", ErrUnsafeKubeconfig, name)
		}
	}
	for name, c := range cfg.Clusters {
		if c.CertificateAuthority != "" {
			return fmt.Errorf("%w: cluster %q names a CA file; inline it (certificate-authority-data)", ErrUnsafeKubeconfig, name)
		}
	}
	return nil
}

// Reader reads source ContainerVersions, keeping one client per distinct
// kubeconfig so repeated reads reuse connections. A read is one GET of one
// object: the remote reader needs only get on containerversions in the
// source namespace.
type Reader struct {
	mu      sync.Mutex
	clients map[[32]byte]versioned.Interface
}

// NewReader returns an empty Reader.
func NewReader() *Reader { return &Reader{clients: map[[32]byte]versioned.Interface{}} }

// Read GETs namespace/name from the cluster kubeconfig (from a Secret)
// reaches.
func (r *Reader) Read(ctx context.Context, kubeconfig []byte, namespace, name string) (*cvv1.ContainerVersion, error) {
	client, err := r.client(kubeconfig)
	if err != nil {
		return nil, err
	}
	return ReadWith(ctx, client, namespace, name)
}

// ReadWith GETs namespace/name through client, within the read timeout.
func ReadWith(ctx context.Context, client versioned.Interface, namespace, name string) (*cvv1.ContainerVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	cv, err := client.CvmanagerV1alpha1().ContainerVersions(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ContainerVersion %s/%s: %w", namespace, name, err)
	}
	return cv, nil
}

func (r *Reader) client(kubeconfig []byte) (versioned.Interface, error) {
	key := sha256.Sum256(kubeconfig)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[key]; ok {
		return c, nil
	}
	rc, err := RESTConfigFromSecret(kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := versioned.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if len(r.clients) >= 64 { // rotated Secrets leave old entries: start afresh
		r.clients = map[[32]byte]versioned.Interface{}
	}
	r.clients[key] = c
	return c, nil
}
