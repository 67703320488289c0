// Package kubetest holds helpers for tests that run against the real local
// control plane: installing the generated CRDs and building test objects.
package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// RepoRoot is the repository root, found from this file's location so tests
// in any package can read deploy/.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// InstallCRDs creates (or updates) every CRD in deploy/crds and waits until
// each is Established, which is when the apiserver starts serving it.
func InstallCRDs(ctx context.Context, cfg *rest.Config) ([]*apiextv1.CustomResourceDefinition, error) {
	client, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "deploy", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs under deploy/crds (run make generate): %v", err)
	}
	var installed []*apiextv1.CustomResourceDefinition
	for _, f := range files {
		crd, err := applyCRD(ctx, client, f)
		if err != nil {
			return nil, err
		}
		installed = append(installed, crd)
	}
	return installed, nil
}

func applyCRD(ctx context.Context, client apiextclient.Interface, file string) (*apiextv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	want := &apiextv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, want); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	got, err := crds.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		current, getErr := crds.Get(ctx, want.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, getErr
		}
		want.ResourceVersion = current.ResourceVersion
		got, err = crds.Update(ctx, want, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("installing CRD %s: %w", want.Name, err)
	}
	return waitEstablished(ctx, crds, got.Name)
}

type crdGetter interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*apiextv1.CustomResourceDefinition, error)
}

func waitEstablished(ctx context.Context, crds crdGetter, name string) (*apiextv1.CustomResourceDefinition, error) {
	var crd *apiextv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			var err error
			crd, err = crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return IsEstablished(crd), nil
		})
	if err != nil {
		return nil, fmt.Errorf("CRD %s not Established: %w", name, err)
	}
	return crd, nil
}

// IsEstablished reports whether the apiserver serves the CRD.
func IsEstablished(crd *apiextv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
			return true
		}
	}
	return false
}
