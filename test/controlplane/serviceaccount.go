package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// ServiceAccountConfig returns a client config authenticated as the given
// ServiceAccount (created if missing) with a token from the TokenRequest
// API, so code can be exercised under exactly the RBAC that account is
// granted, as it would run in a pod.
func (c *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	accounts := c.AdminClient().CoreV1().ServiceAccounts(namespace)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := accounts.Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	expiry := int64((2 * time.Hour).Seconds())
	tr, err := accounts.CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for %s/%s: %w", namespace, name, err)
	}
	return &rest.Config{
		Host:        c.admin.Host,
		BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{ // the server's identity only, none of the admin's
			CAFile: c.admin.CAFile, CAData: c.admin.CAData,
			ServerName: c.admin.ServerName, Insecure: c.admin.Insecure,
		},
		QPS: 100, Burst: 200,
	}, nil
}

// RestartAPIServer stops kube-apiserver and starts it again on the same port
// with the same certificates and etcd, for fault tests: clients see their
// connections and watches drop, then the API answer again.
func (c *ControlPlane) RestartAPIServer(ctx context.Context) error {
	if c.external {
		return errors.New("RestartAPIServer: not possible on an external cluster (CVMANAGER_TEST_KUBECONFIG)")
	}
	c.mu.Lock()
	p, stopped := c.procs["kube-apiserver"], c.stopped
	c.mu.Unlock()
	if stopped {
		return errors.New("RestartAPIServer: control plane is stopped")
	}
	if p != nil {
		// After a restart the old apiserver stops listening at once but
		// can linger ~10 s in shutdown; its port is free, so do not wait.
		p.stop(2 * time.Second)
	}
	return c.startAPIServer(ctx)
}

// CAFile is the apiserver's self-signed certificate, the clients' CA.
func (c *ControlPlane) CAFile() string { return c.admin.CAFile }
