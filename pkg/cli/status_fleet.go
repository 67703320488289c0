package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/clientcmd"

	"cvmanager.dev/cvmanager/pkg/fleet"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
)

// fleetReadTimeout bounds the read of one cluster: an unreachable one is
// shown as such, it never holds the others.
const fleetReadTimeout = 10 * time.Second

// fleetFlags are status's flags for a view across clusters.
type fleetFlags struct {
	contexts    []string
	allContexts bool
}

func (f *fleetFlags) enabled() bool { return len(f.contexts) > 0 || f.allContexts }

// contextNames returns the contexts to read: --contexts in order, or every
// context of the kubeconfig, sorted.
func (f *fleetFlags) contextNames(kube *KubeFlags) ([]string, error) {
	if !f.allContexts {
		return f.contexts, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kube.Kubeconfig
	cfg, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	names := make([]string, 0, len(cfg.Contexts))
	for name := range cfg.Contexts {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("the kubeconfig has no contexts")
	}
	return names, nil
}

// readFleet lists the CVs of every context at once (one LIST per
// cluster) and lines them up; a cluster that fails is a column that says
// why.
func readFleet(ctx context.Context, kube *KubeFlags, contexts []string, selector labels.Selector) fleet.Matrix {
	clusters := make([]fleet.Cluster, len(contexts))
	var wg sync.WaitGroup
	for i, name := range contexts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i] = readCluster(ctx, &KubeFlags{Kubeconfig: kube.Kubeconfig, Context: name}, name, selector)
		}()
	}
	wg.Wait()
	return fleet.NewMatrix(clusters)
}

func readCluster(ctx context.Context, kube *KubeFlags, name string, selector labels.Selector) fleet.Cluster {
	c := fleet.Cluster{Name: name}
	cfg, err := kube.RESTConfig()
	if err != nil {
		c.Error = err.Error()
		return c
	}
	cfg.Timeout = fleetReadTimeout
	cfg.QPS, cfg.Burst = 20, 20
	cvClient, err := versioned.NewForConfig(cfg)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, fleetReadTimeout)
	defer cancel()
	list, err := cvClient.CvmanagerV1alpha1().ContainerVersions(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Entries, c.Fetched = fleet.EntriesOf(list.Items), time.Now()
	return c
}

// printFleet writes the matrix: one row per CV, one column per cluster
// with "version state since" and "drifted" or "held <version>" when so.
func printFleet(w io.Writer, output string, m fleet.Matrix, now time.Time) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"CV"}
	for _, c := range m.Clusters {
		head = append(head, strings.ToUpper(oneLine(c.Name)))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range m.Rows {
		line := []string{oneLine(r.Namespace + "/" + r.Name)}
		for i, cell := range r.Cells {
			line = append(line, fleetCell(&m.Clusters[i], cell, now))
		}
		if r.Differs {
			line[0] += " *"
		}
		fmt.Fprintln(tw, strings.Join(line, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(m.Rows) == 0 {
		fmt.Fprintln(w, "no ContainerVersions found")
	}
	for _, c := range m.Clusters {
		if c.Error != "" {
			fmt.Fprintf(w, "%s: unreachable: %s\n", oneLine(c.Name), oneLine(c.Error))
		}
	}
	return nil
}

func fleetCell(c *fleet.Cluster, e *fleet.Entry, now time.Time) string {
	switch {
	case !c.Reachable():
		return "unreachable"
	case e == nil:
		return "-"
	}
	parts := []string{orDash(oneLine(e.Version)), orDash(e.State)}
	if !e.Since.IsZero() {
		parts = append(parts, now.Sub(e.Since).Round(time.Second).String())
	}
	if e.Drifted && e.State != "Drifted" {
		parts = append(parts, "drifted")
	}
	if e.Held != "" && e.Held != e.Version {
		held := "held " + oneLine(e.Held)
		if !e.HeldUntil.IsZero() {
			held += " until " + e.HeldUntil.UTC().Format(time.RFC3339)
		}
		parts = append(parts, held)
	}
	return strings.Join(parts, " ")
}
