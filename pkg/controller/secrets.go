package controller

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// secretTTL bounds how stale a cached pull secret may be. Secrets are read
// with GET (not watched) so the controller needs no list/watch on secrets.
const secretTTL = time.Minute

type cachedSecret struct {
	data    []byte
	fetched time.Time
}

// secretCache reads dockerconfigjson pull secrets on demand.
type secretCache struct {
	kube  kubernetes.Interface
	clock clock.Clock
	mu    sync.Mutex
	byKey map[string]cachedSecret
}

func newSecretCache(kube kubernetes.Interface, clk clock.Clock) *secretCache {
	return &secretCache{kube: kube, clock: clk, byKey: map[string]cachedSecret{}}
}

func (s *secretCache) get(ctx context.Context, namespace, name string) []byte {
	key := namespace + "/" + name
	s.mu.Lock()
	cached, ok := s.byKey[key]
	s.mu.Unlock()
	if ok && s.clock.Since(cached.fetched) < secretTTL {
		return cached.data
	}
	secret, err := s.kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	var data []byte
	if err != nil {
		// The name is logged, never the content.
		klog.V(2).InfoS("Pull secret unavailable", "secret", key, "err", err)
	} else if secret.Type == corev1.SecretTypeDockerConfigJson {
		data = secret.Data[corev1.DockerConfigJsonKey]
	}
	s.mu.Lock()
	s.byKey[key] = cachedSecret{data: data, fetched: s.clock.Now()}
	s.mu.Unlock()
	return data
}

// pullSecrets collects the registry credentials for a CV: the secrets it
// names and the imagePullSecrets of the workloads it selects, those its
// author may read (authorize.go).
func (c *Controller) pullSecrets(ctx context.Context, cv *cvv1.ContainerVersion, workloads []workload.Workload) [][]byte {
	var out [][]byte
	for _, name := range c.readableSecrets(ctx, cv, pullSecretNames(cv, workloads)) { // issue 19 hook
		if data := c.secrets.get(ctx, cv.Namespace, name); len(data) > 0 {
			out = append(out, data)
		}
	}
	return out
}
