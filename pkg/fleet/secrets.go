package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// secretTTL bounds how stale a cached kubeconfig may be: a rotated Secret
// is picked up within it. Secrets are read with GET, never watched, so the
// controller needs no list/watch on Secrets.
const secretTTL = time.Minute

// KubeconfigSecrets reads the kubeconfig Secrets of promotion sources,
// cached for a minute per Secret and key.
type KubeconfigSecrets struct {
	Kube  kubernetes.Interface
	Clock clock.Clock

	mu    sync.Mutex
	cache map[string]cachedKubeconfig
}

type cachedKubeconfig struct {
	data    []byte
	err     error
	fetched time.Time
}

// Get returns the kubeconfig cv's spec.promotion.from.clusterSecretRef
// names, from cv's namespace. The caller must have checked that the CV's
// author may get that Secret (the controller's access review).
func (s *KubeconfigSecrets) Get(ctx context.Context, cv *cvv1.ContainerVersion) ([]byte, error) {
	if cv.Spec.Promotion == nil {
		return nil, fmt.Errorf("%s/%s has no spec.promotion", cv.Namespace, cv.Name)
	}
	ref := cv.Spec.Promotion.From.ClusterSecretRef
	key := cv.Namespace + "/" + ref.Name + "/" + ref.Key
	now := s.Clock.Now()
	s.mu.Lock()
	c, ok := s.cache[key]
	s.mu.Unlock()
	if ok && now.Sub(c.fetched) < secretTTL {
		return c.data, c.err
	}
	c = cachedKubeconfig{fetched: now}
	secret, err := s.Kube.CoreV1().Secrets(cv.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		c.err = fmt.Errorf("reading the promotion source's kubeconfig Secret %s/%s: %w", cv.Namespace, ref.Name, err)
	} else {
		c.data, c.err = KubeconfigFromSecret(secret, ref.Key)
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string]cachedKubeconfig{}
	}
	s.cache[key] = c
	s.mu.Unlock()
	return c.data, c.err
}

// SecretName is the Secret a CV's promotion source is read with, "" when
// it has none: the controller adds it to the Secrets its access review
// checks against the CV's author.
func SecretName(cv *cvv1.ContainerVersion) string {
	if cv.Spec.Promotion == nil {
		return ""
	}
	return cv.Spec.Promotion.From.ClusterSecretRef.Name
}
