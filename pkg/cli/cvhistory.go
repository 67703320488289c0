package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/dashboard"
	"cvmanager.dev/cvmanager/pkg/history"
)

// newCVHistoryCommand prints a ContainerVersion's rollouts, the same
// records as its dashboard history page, read through the API.
func newCVHistoryCommand(kube *KubeFlags) *cobra.Command {
	var namespace, output string
	cmd := &cobra.Command{
		Use:   "history CV",
		Short: "Show the rollouts of a ContainerVersion, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if namespace == "" {
				namespace = kube.Namespace()
			}
			kubeClient, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("ContainerVersion %s/%s: %w", namespace, args[0], err)
			}
			src := dashboard.APISource{Ctx: cmd.Context(), Kube: kubeClient, CVClient: cvClient}
			rows, err := dashboard.Rows(dashboard.OneCV(cv, src), namespace)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(rows))
			for _, r := range rows {
				names = append(names, r.Name)
			}
			records, err := history.CVHistory(cmd.Context(), history.NewStore(kubeClient), cv, names)
			if err != nil {
				return err
			}
			return printRecords(cmd.OutOrStdout(), records, output)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: the kubeconfig's)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func printRecords(w io.Writer, records []history.Record, output string) error {
	if done, err := printStructured(w, records, output); done {
		return err
	}
	switch output {
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINISHED\tOUTCOME\tFROM\tTO\tDURATION\tTRIGGER\tWORKLOADS\tGIT\tREASON")
		for _, r := range records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), orDash(r.Outcome), orDash(r.FromVersion),
				orDash(r.ToVersion), (time.Duration(r.DurationSeconds * float64(time.Second))).Round(time.Second), orDash(r.Trigger),
				orDash(r.Workload), gitColumn(r.WriteBack), firstLine(r.Reason))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown output format %q: use table, json or yaml", output)
	}
}

// gitColumn is a record's write-back in a word or two: the state and the
// short commit or the pull request; -o json has the failure's reason.
func gitColumn(wb *history.WriteBack) string {
	switch {
	case wb == nil:
		return "-"
	case wb.URL != "":
		return wb.State + " " + wb.URL
	case len(wb.Commit) > 7:
		return wb.State + " " + wb.Commit[:7]
	case wb.Commit != "":
		return wb.State + " " + wb.Commit
	}
	return wb.State
}

// firstLine keeps a table row on one line; -o json has the whole reason.
func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return orDash(s)
}
