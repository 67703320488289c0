// Command cvmanager is the continuous-deployment controller and its CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cvmanager.dev/cvmanager/pkg/cli"
)

func main() {
	// SIGINT and SIGTERM cancel the context so long-running commands
	// (run, cr sync) stop their informers and servers gracefully.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewRootCommand()
	if cli.IsPlugin(os.Args[0]) {
		// Installed as kubectl-cv: `kubectl cv get` runs `cvmanager cv get`.
		root = cli.NewPluginCommand()
	}
	err := root.ExecuteContext(ctx)
	stop()
	var exit *cli.ExitCodeError
	if errors.As(err, &exit) {
		// cvmanager-state ran and said why it failed.
		os.Exit(exit.Code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
