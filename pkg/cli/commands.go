package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"cvmanager.dev/cvmanager/pkg/version"
)

func newCRCommand(kube *KubeFlags) *cobra.Command {
	cr := &cobra.Command{
		Use:   "cr",
		Short: "Container registry commands: run one syncer, move tags",
	}
	cr.AddCommand(newCRSyncCommand(kube), newTaggerCommand(kube))
	return cr
}

func newCVCommand(kube *KubeFlags) *cobra.Command {
	cv := &cobra.Command{
		Use:   "cv",
		Short: "Inspect ContainerVersions, release held versions, stamp their author (also kubectl cv)",
	}
	cv.AddCommand(newCVGetCommand(kube), newCVHistoryCommand(kube), newReleaseCommand(kube), newCVStampCommand(kube), newPolicyCommand(kube))
	return cv
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "", "text":
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "cvmanager %s (commit %s, %s, %s)\n",
					info.Version, info.Commit, info.GoVersion, info.Platform)
				return err
			default:
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
