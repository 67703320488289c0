package cli

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// PluginName is the name kubectl looks for on PATH to run `kubectl cv`:
// the cvmanager binary installed (copied or linked) under this name is a
// kubectl plugin.
const PluginName = "kubectl-cv"

// IsPlugin says whether the binary was started as the kubectl plugin,
// from its argv[0].
func IsPlugin(argv0 string) bool {
	name := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	return name == PluginName
}

// NewPluginCommand is `cvmanager cv` as its own root, for `kubectl cv ...`:
// get, history, release, stamp and policy, with kubectl's connection flags
// (--kubeconfig, --context) and each command's -n and -o.
func NewPluginCommand() *cobra.Command {
	kube := &KubeFlags{}
	root := newCVCommand(kube)
	root.Use = "kubectl-cv"
	root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl cv"}
	root.SilenceUsage, root.SilenceErrors = true, true
	root.Long = `kubectl cv shows what cvmanager deployed where and releases held versions.
It is the cvmanager binary installed as kubectl-cv; every command is also
"cvmanager cv <command>".`
	kube.AddFlags(root.PersistentFlags())
	return root
}
