package e2eenv

import (
	"bytes"

	"cvmanager.dev/cvmanager/pkg/cli"
)

// RunCLI runs cvmanager's command tree in-process, as a user would run the
// binary, and returns everything it printed.
func RunCLI(args ...string) (string, error) {
	root := cli.NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
