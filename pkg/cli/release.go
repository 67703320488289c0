package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/policy"
)

// releaseOptions are the flags of `cvmanager release`.
type releaseOptions struct {
	namespace, name, version string
	branch, artifact         string
	registry                 taggerFlags
	force                    bool
	service                  serviceFlags
	env                      string
}

// newReleaseCommand approves the version a CV holds back (Manual release
// mode, a downgrade, a branch that is not auto-released) by annotating the
// CV; with --branch or --artifact it first points the CV's tag at the
// version asked for. The controller deploys it.
func newReleaseCommand(kube *KubeFlags) *cobra.Command {
	o := &releaseOptions{}
	cmd := &cobra.Command{
		Use:   "release [CV] [--cv CV]",
		Short: "Deploy the version a ContainerVersion holds back, the newest of a branch, or an exact version",
		Long: `Without --branch or --artifact, release approves the version the ContainerVersion
holds back (Manual release mode, a downgrade, a branch policy.autoReleaseBranches
does not name); --version guards against approving something else.

--branch b picks the newest version of branch b: the registry's tags whose
versionSyntax group "branch" is b, ordered by the image config's created time
(ties: the later tag in the registry's list). --artifact v takes exactly the
version tag v. Either way the version is approved and the CV's tag is moved
onto it, so the controller rolls it out with the CV's strategy and checks.
policy.branchRestriction and the CV's signature policy (Enforce) are checked
first; --force skips the signature check only.

--service s --env e picks the ContainerVersion labelled <--label>=s in
namespace e (or with <--env-label>=e), as promote --service does.`,
		Example: `  cvmanager release web -n prod
  cvmanager release --cv web -n prod --branch main --insecure
  cvmanager release --cv web -n prod --artifact main-3f2a9c1d4e
  cvmanager release --service web --env prod --branch main`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args, kube); err != nil {
				return err
			}
			_, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			if err := o.resolveService(cmd.Context(), cvClient); err != nil {
				return err
			}
			cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(o.namespace).Get(cmd.Context(), o.name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("ContainerVersion %s/%s: %w", o.namespace, o.name, err)
			}
			if o.branch != "" || o.artifact != "" {
				return o.releasePicked(cmd.Context(), cmd.OutOrStdout(), kube, cv)
			}
			return o.approveHeld(cmd.Context(), cmd.OutOrStdout(), cvClient, cv)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	f.StringVar(&o.name, "cv", "", "name of the ContainerVersion (or give it as the argument)")
	f.StringVar(&o.version, "version", "", "the held version or digest to release (guards against releasing something else)")
	f.StringVar(&o.branch, "branch", "", "release the newest version of this branch (versionSyntax group \"branch\")")
	f.StringVar(&o.artifact, "artifact", "", "release exactly this version tag")
	f.BoolVar(&o.force, "force", false, "with --branch or --artifact: release even an image the CV's signature policy would refuse")
	f.StringVar(&o.service.service, "service", "", "pick the ContainerVersion of this service in --env instead of naming it")
	f.StringVar(&o.env, "env", "", "with --service: the environment (namespace, or the --env-label value)")
	o.service.addLabelFlags(f)
	o.registry.addRegistryFlags(f)
	return cmd
}

// resolveService turns --service and --env into the CV they name, as
// promote's --service does.
func (o *releaseOptions) resolveService(ctx context.Context, cvClient versioned.Interface) error {
	if o.service.service == "" {
		return nil
	}
	key, err := o.service.resolve(ctx, cvClient, o.env, o.namespace)
	if err != nil {
		return fmt.Errorf("--env: %w", err)
	}
	o.namespace, o.name = key.Namespace, key.Name
	return nil
}

func (o *releaseOptions) complete(args []string, kube *KubeFlags) error {
	if len(args) == 1 && o.name != "" && args[0] != o.name {
		return fmt.Errorf("two ContainerVersions named: %s and --cv %s", args[0], o.name)
	}
	if len(args) == 1 {
		o.name = args[0]
	}
	if o.service.service != "" && (o.name != "" || o.env == "") {
		return fmt.Errorf("--service picks the ContainerVersion by --env: give --env and no CV name")
	}
	if o.name == "" && o.service.service == "" {
		return fmt.Errorf("name the ContainerVersion: release <cv>, --cv <cv>, or --service <s> --env <e>")
	}
	if o.branch != "" && o.artifact != "" {
		return fmt.Errorf("give --branch or --artifact, not both")
	}
	if o.version != "" && (o.branch != "" || o.artifact != "") {
		return fmt.Errorf("--version guards the release of a held version; with --branch or --artifact leave it out")
	}
	if o.namespace == "" {
		o.namespace = kube.Namespace()
	}
	return nil
}

// approveHeld is the original release: approve status.availableDigest.
func (o *releaseOptions) approveHeld(ctx context.Context, out io.Writer, cvClient versioned.Interface, cv *cvv1.ContainerVersion) error {
	st := cv.Status
	if st.AvailableDigest == "" {
		return fmt.Errorf("%s/%s holds no version back (current %s, %s)", cv.Namespace, cv.Name, orDash(st.CurrVersion), orDash(st.CurrStatus))
	}
	if o.version != "" && o.version != st.AvailableVersion && o.version != st.AvailableDigest {
		return fmt.Errorf("%s/%s holds %s (%s), not %s", cv.Namespace, cv.Name, st.AvailableVersion, st.AvailableDigest, o.version)
	}
	if c := meta.FindStatusCondition(st.Conditions, cvv1.ConditionReleaseBlocked); c != nil && c.Status == metav1.ConditionTrue && !overridable(c.Reason) {
		return fmt.Errorf("%s/%s holds %s for a reason no release overrides (%s): %s", cv.Namespace, cv.Name, st.AvailableVersion, c.Reason, c.Message)
	}
	if err := approve(ctx, cvClient, cv, st.AvailableDigest); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "released %s (%s) for %s/%s\n", st.AvailableVersion, st.AvailableDigest, cv.Namespace, cv.Name)
	return err
}

// overridable reports whether a ReleaseBlocked reason is one a release
// lets through (see controller.AnnotationRelease); restrictions on which
// versions or branches may run at all are not.
func overridable(reason string) bool {
	switch reason {
	case policy.ReasonBranchRestricted, "RestrictedByController", "VersionNotAllowed", "InvalidPolicy":
		return false
	}
	return true
}

// approve sets the release annotation to digest.
func approve(ctx context.Context, cvClient versioned.Interface, cv *cvv1.ContainerVersion, digest string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{controller.AnnotationRelease: digest}}})
	_, err := cvClient.CvmanagerV1alpha1().ContainerVersions(cv.Namespace).Patch(ctx, cv.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
