package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/pkg/dashboard"
)

// newCVGetCommand shows the dashboard's rows through the Kubernetes API, so
// it works without reaching the controller's HTTP server.
func newCVGetCommand(kube *KubeFlags) *cobra.Command {
	var namespace, output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show managed workloads and their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				namespace = ""
			} else if namespace == "" {
				namespace = kube.Namespace()
			}
			kubeClient, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			rows, err := dashboard.Rows(dashboard.APISource{Ctx: cmd.Context(), Kube: kubeClient, CVClient: cvClient}, namespace)
			if err != nil {
				return err
			}
			return printRows(cmd.OutOrStdout(), rows, output)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: the kubeconfig's)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "all namespaces")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide (adds SIGNER, REVISION, GIT and HELD: a version held back and, with spec.policy.minAge or a soak, when it becomes eligible), json or yaml")
	return cmd
}

func printRows(w io.Writer, rows []dashboard.Row, output string) error {
	if done, err := printStructured(w, rows, output); done {
		return err
	}
	switch output {
	case "table", "":
		return printTable(w, rows, false)
	case "wide":
		return printTable(w, rows, true)
	default:
		return fmt.Errorf("unknown output format %q: use table, wide, json or yaml", output)
	}
}

// printStructured prints items as JSON or YAML (an empty list, never
// null) and reports whether output named one of those formats.
func printStructured[T any](w io.Writer, items []T, output string) (bool, error) {
	if items == nil {
		items = []T{}
	}
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(items)
	case "yaml":
		data, err := yaml.Marshal(items)
		if err != nil {
			return true, err
		}
		_, err = w.Write(data)
		return true, err
	}
	return false, nil
}

// printTable prints one line per workload; wide adds who signed the
// deployed image (spec.policy.verify), the revision it was built from
// (its provenance, shortened as git does), where git stands on it
// (spec.writeBack) and the version held back, with the time it becomes
// eligible (status.heldUntil) when it waits for minAge or a soak. Wide
// columns are appended after the default ones, which scripts may parse.
func printTable(w io.Writer, rows []dashboard.Row, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAMESPACE\tWORKLOAD\tCV\tTAG\tVERSION\tPODS\tSTATUS\tUPDATED\tRUNNING"
	if wide {
		header += "\tSIGNER\tREVISION\tGIT\tHELD"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		updated := "-"
		if !r.LastUpdate.IsZero() {
			updated = time.Since(r.LastUpdate).Round(time.Second).String()
		}
		running := orDash(r.Image)
		if r.Drifted {
			running = "* " + running // the workload does not run the CV's version
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s", r.Namespace, r.Type, r.Name, r.CV, r.Tag,
			orDash(r.Version), r.AvailablePods, r.DesiredPods, orDash(r.Status), updated, running)
		if wide {
			revision := ""
			if r.Provenance != nil {
				revision = r.Provenance.ShortRevision()
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", orDash(r.Signer), orDash(oneLine(revision)), orDash(oneLine(r.WriteBack)), orDash(heldCell(r)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// heldCell is the version the row's CV holds back ("held" when it names
// only a digest), with " until <RFC 3339 UTC>" when it becomes eligible on
// its own, as status's HELD column shows it; "" when nothing is held.
func heldCell(r dashboard.Row) string {
	if r.ReleaseCommand == "" && r.AvailableVersion == "" {
		return ""
	}
	held := oneLine(r.AvailableVersion)
	if held == "" {
		held = "held"
	}
	if !r.HeldUntil.IsZero() {
		held += " until " + r.HeldUntil.UTC().Format(time.RFC3339)
	}
	return held
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
