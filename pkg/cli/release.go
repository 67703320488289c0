package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"cvmanager.dev/cvmanager/pkg/controller"
)

// newReleaseCommand approves the version a CV holds back (Manual release
// mode, or a downgrade) by annotating the CV; the controller deploys it.
func newReleaseCommand(kube *KubeFlags) *cobra.Command {
	var namespace, name, version string
	cmd := &cobra.Command{
		Use:   "release [CV] [--cv CV]",
		Short: "Deploy the version a ContainerVersion holds back (Manual release mode, downgrades)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && name != "" && args[0] != name {
				return fmt.Errorf("two ContainerVersions named: %s and --cv %s", args[0], name)
			}
			if len(args) == 1 {
				name = args[0]
			}
			if name == "" {
				return fmt.Errorf("name the ContainerVersion: release <cv> or --cv <cv>")
			}
			if namespace == "" {
				namespace = kube.Namespace()
			}
			_, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			cvs := cvClient.CvmanagerV1alpha1().ContainerVersions(namespace)
			cv, err := cvs.Get(cmd.Context(), name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("ContainerVersion %s/%s: %w", namespace, name, err)
			}
			st := cv.Status
			if st.AvailableDigest == "" {
				return fmt.Errorf("%s/%s holds no version back (current %s, %s)", namespace, name, orDash(st.CurrVersion), orDash(st.CurrStatus))
			}
			if version != "" && version != st.AvailableVersion && version != st.AvailableDigest {
				return fmt.Errorf("%s/%s holds %s (%s), not %s", namespace, name, st.AvailableVersion, st.AvailableDigest, version)
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
				"annotations": map[string]string{controller.AnnotationRelease: st.AvailableDigest}}})
			if _, err := cvs.Patch(cmd.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "released %s (%s) for %s/%s\n", st.AvailableVersion, st.AvailableDigest, namespace, name)
			return err
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	cmd.Flags().StringVar(&name, "cv", "", "name of the ContainerVersion (or give it as the argument)")
	cmd.Flags().StringVar(&version, "version", "", "the held version or digest to release (guards against releasing something else)")
	return cmd
}
