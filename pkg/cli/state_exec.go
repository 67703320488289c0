package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// StateBinary is the program that carries the state commands and the Helm
// SDK they need for --helm-releases. Keeping it apart keeps the SDK out of
// the controller's memory: `cvmanager state ...` hands its command line to
// it, so users' commands and scripts keep working unchanged.
const StateBinary = "cvmanager-state"

// EnvStateBinary names the state binary explicitly (tests, unusual layouts).
const EnvStateBinary = "CVMANAGER_STATE_BINARY"

// newStateExecCommand is `cvmanager state` in the controller binary: every
// argument, flags and --help included, goes to cvmanager-state.
func newStateExecCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "state",
		Short: "Export, import, show and clear the release state (failover, cluster upgrades)",
		Long: `The release state commands live in the companion binary cvmanager-state
(installed beside cvmanager, in the same image), which carries the Helm SDK
the controller does not need. This command runs it with the same arguments;
see ` + "`cvmanager state --help`" + ` and docs/state.md.`,
		DisableFlagParsing: true,
		ValidArgsFunction:  completeState,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := findStateBinary()
			if err != nil {
				return err
			}
			return execState(cmd, bin, append([]string{"state"}, args...))
		},
	}
}

// completeState asks cvmanager-state for the completions of `state ...`
// (cobra's hidden __complete command), so shell completion reaches the
// subcommands and flags that live there. Without the binary it offers
// nothing rather than failing the shell.
func completeState(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	bin, err := findStateBinary()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	line := append(append([]string{cobra.ShellCompRequestCmd, "state"}, args...), toComplete)
	out, err := exec.CommandContext(cmd.Context(), bin, line...).Output()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return parseCompletions(string(out))
}

// parseCompletions reads __complete's answer: one completion per line,
// then ":<directive>".
func parseCompletions(out string) ([]cobra.Completion, cobra.ShellCompDirective) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	directive, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if !strings.HasPrefix(last, ":") || err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var completions []cobra.Completion
	for _, l := range lines[:len(lines)-1] {
		if l != "" {
			completions = append(completions, l)
		}
	}
	return completions, cobra.ShellCompDirective(directive)
}

// findStateBinary looks at $CVMANAGER_STATE_BINARY, then beside this
// executable, then on $PATH.
func findStateBinary() (string, error) {
	if p := os.Getenv(EnvStateBinary); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), StateBinary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(StateBinary)
	if err != nil {
		return "", fmt.Errorf("the state commands need %s beside cvmanager or on $PATH "+
			"(the image and `make build` install both; or set $%s): %w", StateBinary, EnvStateBinary, err)
	}
	return p, nil
}

// execState runs bin with args, wired to the command's streams, and
// passes its exit status on. SIGINT and SIGTERM cancel the command's
// context; the child is then sent SIGTERM (daemon mode exports stop
// cleanly) rather than killed.
func execState(cmd *cobra.Command, bin string, args []string) error {
	c := exec.CommandContext(cmd.Context(), bin, args...)
	c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	err := c.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// The child printed its own error; only its status is passed on.
		return &ExitCodeError{Code: exit.ExitCode()}
	}
	return err
}

// ExitCodeError asks main to exit with Code and print nothing: the program
// that failed already said why.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// NewStateRootCommand is the root of cvmanager-state: `state` with its
// subcommands (helm opens the Helm release store) and `version`, under the
// name cvmanager so help and errors read as the user typed them.
func NewStateRootCommand(helm HelmFactory) *cobra.Command {
	kube := &KubeFlags{}
	root := &cobra.Command{
		Use:           "cvmanager",
		Short:         "cvmanager's release state commands (cvmanager-state, run by `cvmanager state`)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	kube.AddFlags(root.PersistentFlags())
	root.AddCommand(NewStateCommand(kube, helm), newVersionCommand())
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}
