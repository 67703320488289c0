package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// ServiceAccountConfig returns a client config authenticated as the given
// ServiceAccount (created if missing) through a TokenRequest, so code can be
// exercised under exactly the RBAC that account is granted.
func (c *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	client := c.AdminClient()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	expiry := int64((2 * time.Hour).Seconds())
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for %s/%s: %w", namespace, name, err)
	}
	return &rest.Config{
		Host:            c.serverURL(),
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.caFile()},
		QPS:             100, Burst: 200,
	}, nil
}

// RestartAPIServer stops kube-apiserver and starts it again on the same port
// with the same certificates and etcd, for fault tests.
func (c *ControlPlane) RestartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	cmd := c.procs["kube-apiserver"]
	c.mu.Unlock()
	if cmd != nil {
		if err := stopProcess(cmd); err != nil {
			return err
		}
	}
	return c.startAPIServer(ctx)
}

// CAFile is the apiserver's self-signed certificate, the clients' CA.
func (c *ControlPlane) CAFile() string { return filepath.Clean(c.caFile()) }
