// Package cli builds cvmanager's cobra command tree. Each command is a thin
// layer over the pkg/... libraries so the behaviour can be tested without a
// process boundary.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// NewRootCommand returns the `cvmanager` command with every subcommand attached.
func NewRootCommand() *cobra.Command {
	kube := &KubeFlags{}
	root := &cobra.Command{
		Use:   "cvmanager",
		Short: "Continuous deployment by registry polling",
		Long: `cvmanager keeps Kubernetes workloads on the image a registry tag points to.

Declare a ContainerVersion beside a workload; cvmanager polls the registry and
rolls the workload out (by digest) whenever the tag moves.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newRunCommand(kube),
		newCRCommand(kube),
		newCVCommand(kube),
		newReleaseCommand(kube),
		newTriggerCommand(kube),
		newPromoteCommand(kube),
		newPolicyCommand(kube),
		newStatusCommand(kube),
		newStateExecCommand(),
		newMigrateCommand(),
		newVersionCommand(),
	)
	// Cobra adds `completion` itself; keep it visible in the tree.
	root.CompletionOptions.HiddenDefaultCmd = false
	root.InitDefaultCompletionCmd()
	root.Long += "\n\nCommand tree:\n" + commandTree(root, "  ")
	return root
}

// commandTree lists every subcommand, indented, so `cvmanager --help` shows
// the whole tree at once.
func commandTree(cmd *cobra.Command, indent string) string {
	var b strings.Builder
	for _, sub := range cmd.Commands() {
		if sub.Hidden || sub.Name() == "help" {
			continue
		}
		fmt.Fprintf(&b, "%s%-*s %s\n", indent, 24-len(indent), sub.Name(), sub.Short)
		b.WriteString(commandTree(sub, indent+"  "))
	}
	return b.String()
}
