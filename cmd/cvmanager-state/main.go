// Command cvmanager-state carries cvmanager's release state commands
// (`state export|import|show|clear`) and the Helm SDK that --helm-releases
// needs. `cvmanager state ...` runs it, so the controller binary, which
// never touches Helm, does not link the SDK (docs/performance.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/helmrelease"
	"cvmanager.dev/cvmanager/pkg/state"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewStateRootCommand(func(kubeconfig, kubeContext string) state.HelmReleases {
		return helmrelease.New(kubeconfig, kubeContext)
	})
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
