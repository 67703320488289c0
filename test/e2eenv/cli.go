package e2eenv

import (
	"bytes"

	"github.com/spf13/cobra"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/helmrelease"
	"cvmanager.dev/cvmanager/pkg/state"
)

// RunCLI runs cvmanager's command tree in-process, as a user would run the
// binary, and returns everything it printed. The state commands run as
// cvmanager-state's tree (the controller binary hands them to that binary).
func RunCLI(args ...string) (string, error) {
	root := cli.NewRootCommand()
	if len(args) > 0 && args[0] == "state" {
		root = StateRoot()
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// StateRoot is cvmanager-state's command tree with the real Helm store.
func StateRoot() *cobra.Command {
	return cli.NewStateRootCommand(func(kubeconfig, kubeContext string) state.HelmReleases {
		return helmrelease.New(kubeconfig, kubeContext)
	})
}
