// Package helmrelease reads the deployed Helm releases of a cluster and
// installs them into another, through the Helm SDK and Helm's default
// storage (release Secrets), for `cvmanager state export|import
// --helm-releases`. It lives apart from pkg/state so only the commands that
// ask for releases pull in the SDK's code paths.
package helmrelease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/klog/v2"

	"cvmanager.dev/cvmanager/pkg/state"
)

// helmDriver is Helm's default release storage.
const helmDriver = "secret"

// Store reads and installs releases of the cluster its kubeconfig selects.
type Store struct {
	kubeconfig, context string
}

// New connects through kubeconfig and context the way helm does (empty:
// $KUBECONFIG, ~/.kube/config, then in-cluster).
func New(kubeconfig, kubeContext string) *Store {
	return &Store{kubeconfig: kubeconfig, context: kubeContext}
}

// config is an SDK configuration for namespace; the client's own namespace
// must be set too, or a chart's objects land in the kubeconfig's default.
func (s *Store) config(namespace string) (*action.Configuration, error) {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Context, flags.Namespace = &s.kubeconfig, &s.context, &namespace
	cfg := new(action.Configuration)
	quiet := func(string, ...any) {}
	if err := cfg.Init(flags, namespace, helmDriver, quiet); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

// List returns every deployed release of the namespaces (all when none
// are given): its chart, as Helm stored it, and the values it was
// installed with.
func (s *Store) List(ctx context.Context, namespaces []string) ([]state.Workload, error) {
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	var out []state.Workload
	for _, ns := range namespaces {
		cfg, err := s.config(ns)
		if err != nil {
			return nil, err
		}
		list := action.NewList(cfg)
		list.StateMask, list.All, list.AllNamespaces = action.ListDeployed, true, ns == ""
		releases, err := list.Run()
		if err != nil {
			return nil, fmt.Errorf("listing Helm releases: %w", err)
		}
		for _, rel := range releases {
			if rel.Chart != nil && rel.Chart.Metadata != nil && rel.Chart.Metadata.Name == ownChart {
				// The new cluster installs its own controller.
				klog.InfoS("Helm release of cvmanager itself not exported", "release", klog.KRef(rel.Namespace, rel.Name))
				continue
			}
			w, err := toWorkload(rel)
			if err != nil {
				return nil, err
			}
			relCfg, err := s.config(rel.Namespace)
			if err != nil {
				return nil, err
			}
			revs, err := history(relCfg, rel.Name)
			if err != nil {
				return nil, err
			}
			if err := withRevisions(w, revs); err != nil {
				return nil, err
			}
			out = append(out, w)
		}
	}
	return out, ctx.Err()
}

// toWorkload renders a release as an exported object.
func toWorkload(rel *release.Release) (state.Workload, error) {
	chartJSON, err := json.Marshal(rel.Chart)
	if err != nil {
		return state.Workload{}, fmt.Errorf("Helm release %s/%s: %w", rel.Namespace, rel.Name, err)
	}
	var chartObj any
	if err := json.Unmarshal(chartJSON, &chartObj); err != nil {
		return state.Workload{}, err
	}
	values := rel.Config
	if values == nil {
		values = map[string]any{}
	}
	obj := map[string]any{
		"apiVersion": state.HelmReleaseAPIVersion, "kind": state.KindHelmRelease,
		"metadata": map[string]any{"namespace": rel.Namespace, "name": rel.Name},
		"chart":    chartObj, "values": values,
	}
	return state.Workload{Kind: state.KindHelmRelease, Namespace: rel.Namespace, Name: rel.Name, Object: obj}, nil
}

// fromWorkload reads the chart and values back.
func fromWorkload(w state.Workload) (*chart.Chart, map[string]any, error) {
	data, err := json.Marshal(w.Object["chart"])
	if err != nil {
		return nil, nil, err
	}
	ch := new(chart.Chart)
	if err := json.Unmarshal(data, ch); err != nil || ch.Metadata == nil {
		return nil, nil, fmt.Errorf("exported Helm release %s/%s holds no readable chart (%v)", w.Namespace, w.Name, err)
	}
	values, _ := w.Object["values"].(map[string]any)
	return ch, values, nil
}

// Install installs the release unless one of its name exists in its
// namespace (whatever its state: it is left alone). A dry run renders the
// chart against the API server and installs nothing.
func (s *Store) Install(ctx context.Context, w state.Workload, dryRun bool) (outcome, detail string, err error) {
	ch, values, err := fromWorkload(w)
	if err != nil {
		return "", "", err
	}
	cfg, err := s.config(w.Namespace)
	if err != nil {
		return "", "", err
	}
	existing, err := action.NewGet(cfg).Run(w.Name)
	switch {
	case err == nil:
		return state.ImportSkipped, compareRelease(existing, w), nil
	case !errors.Is(err, driver.ErrReleaseNotFound):
		return "", "", fmt.Errorf("reading release: %w", err)
	}
	if ch.Metadata.Name == ownChart {
		return state.ImportSkipped, "cvmanager's own release: the new cluster installs its own controller", nil
	}
	revs, err := revisionsOf(w)
	if err != nil {
		return "", "", err
	}
	if len(revs) > 1 && !dryRun {
		rel, err := s.restoreHistory(ctx, cfg, w, revs)
		if err != nil {
			return "", "", err
		}
		return state.ImportCreated, fmt.Sprintf("chart %s %s, %s, revisions %d-%d restored", ch.Metadata.Name, ch.Metadata.Version,
			rel.Info.Status, revs[0].Version, rel.Version), nil
	}
	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = w.Name, w.Namespace
	if dryRun {
		install.DryRun, install.DryRunOption = true, "server"
	}
	rel, err := install.RunWithContext(ctx, ch, values)
	if err != nil {
		return "", "", err
	}
	if dryRun {
		return state.ImportPlanned, "chart " + ch.Metadata.Name + " " + ch.Metadata.Version, nil
	}
	return state.ImportCreated, fmt.Sprintf("chart %s %s, %s", ch.Metadata.Name, ch.Metadata.Version, rel.Info.Status), nil
}
