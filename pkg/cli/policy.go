package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// PolicyRow is one CV's release policy as `policy list` prints it; the
// JSON keys are the spec's.
type PolicyRow struct {
	Namespace           string   `json:"namespace"`
	Name                string   `json:"name"`
	VersionSyntax       string   `json:"versionSyntax"`
	ReleaseMode         string   `json:"releaseMode,omitempty"`
	AllowedVersions     string   `json:"allowedVersions,omitempty"`
	AutoReleaseBranches []string `json:"autoReleaseBranches,omitempty"`
	BranchRestriction   string   `json:"branchRestriction,omitempty"`
	// ControllerRestrictions are the controller-wide restrictions
	// (--policy-version-restriction, the settings ConfigMap) that apply in
	// the CV's namespace: its versions must also match these.
	ControllerRestrictions []string `json:"controllerRestrictions,omitempty"`
}

// policyFlags are the flags of `policy list|apply|delete`.
type policyFlags struct {
	namespace, name, output string
	allNamespaces           bool
	branches                []string
	restriction             string
	deleteRestriction       bool
	settings                string
	restrictions            []string
}

func newPolicyCommand(kube *KubeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "List, apply and delete the branch release policies of ContainerVersions",
		Long: `policy edits spec.policy.autoReleaseBranches (versions of these branches deploy
at once; other branches wait for "cvmanager release") and
spec.policy.branchRestriction (versions of other branches never deploy) of
a ContainerVersion. The branch is the versionSyntax group "branch".`,
	}
	cmd.AddCommand(newPolicyListCommand(kube), newPolicyApplyCommand(kube), newPolicyDeleteCommand(kube))
	return cmd
}

func newPolicyListCommand(kube *KubeFlags) *cobra.Command {
	f := &policyFlags{}
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "Show the release policy of every ContainerVersion in a namespace (or of --cv)",
		Example: "  cvmanager policy list -n prod -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output != "text" && f.output != "json" && f.output != "yaml" {
				return fmt.Errorf("unknown output format %q: use text, json or yaml", f.output)
			}
			if f.allNamespaces && f.name != "" {
				return fmt.Errorf("--cv names one ContainerVersion in one namespace: leave out -A")
			}
			kubeClient, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			rows, err := f.list(cmd.Context(), cvClient, kube.Namespace())
			if err != nil {
				return err
			}
			if err := f.addRestrictions(cmd.Context(), cmd.ErrOrStderr(), kubeClient, rows); err != nil {
				return err
			}
			return printPolicies(cmd.OutOrStdout(), rows, f.output)
		},
	}
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the kubeconfig's)")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "list the ContainerVersions of every namespace")
	cmd.Flags().StringVar(&f.name, "cv", "", "only this ContainerVersion")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output: text, json or yaml")
	cmd.Flags().StringVar(&f.settings, "configmap-key", DefaultSettingsConfigMap, "namespace/name of the controller's settings ConfigMap, whose restrictions are shown (empty: do not read it)")
	cmd.Flags().StringArrayVar(&f.restrictions, "policy-version-restriction", nil, "<namespace-regex>=<version-regex> the controller enforces from its flags, to show beside each CV (repeatable)")
	return cmd
}

// addRestrictions fills in the controller-wide restrictions of each row.
// A settings ConfigMap this user may not read is reported on w and left
// out: the list itself is still worth showing.
func (f *policyFlags) addRestrictions(ctx context.Context, w io.Writer, kube kubernetes.Interface, rows []PolicyRow) error {
	specs, _, err := f.restrictionSpecs(ctx, kube)
	if err != nil {
		fmt.Fprintf(w, "warning: controller-wide restrictions not shown: %v\n", err)
		specs = f.restrictions
	}
	for i := range rows {
		if rows[i].ControllerRestrictions, err = restrictionsFor(specs, rows[i].Namespace); err != nil {
			return err
		}
	}
	return nil
}

func (f *policyFlags) list(ctx context.Context, cvClient versioned.Interface, defaultNamespace string) ([]PolicyRow, error) {
	ns := f.ns(defaultNamespace)
	if f.allNamespaces {
		ns = metav1.NamespaceAll
	}
	cvs := cvClient.CvmanagerV1alpha1().ContainerVersions(ns)
	var items []cvv1.ContainerVersion
	if f.name != "" {
		cv, err := cvs.Get(ctx, f.name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("ContainerVersion %s/%s: %w", ns, f.name, err)
		}
		items = []cvv1.ContainerVersion{*cv}
	} else {
		list, err := cvs.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		items = list.Items
	}
	rows := make([]PolicyRow, 0, len(items))
	for _, cv := range items {
		row := PolicyRow{Namespace: cv.Namespace, Name: cv.Name, VersionSyntax: cv.Spec.VersionSyntax}
		if p := cv.Spec.Policy; p != nil {
			row.ReleaseMode, row.AllowedVersions = p.ReleaseMode, p.AllowedVersions
			row.AutoReleaseBranches, row.BranchRestriction = p.AutoReleaseBranches, p.BranchRestriction
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (f *policyFlags) ns(defaultNamespace string) string {
	if f.namespace != "" {
		return f.namespace
	}
	return defaultNamespace
}

func printPolicies(w io.Writer, rows []PolicyRow, output string) error {
	if done, err := printStructured(w, rows, output); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tCV\tAUTO-RELEASE-BRANCHES\tBRANCH-RESTRICTION\tRELEASE-MODE\tALLOWED-VERSIONS\tVERSION-SYNTAX\tCONTROLLER-RESTRICTIONS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, orDash(strings.Join(r.AutoReleaseBranches, ",")),
			orDash(r.BranchRestriction), orDash(r.ReleaseMode), orDash(r.AllowedVersions), orDash(r.VersionSyntax),
			orDash(strings.Join(r.ControllerRestrictions, " ")))
	}
	return tw.Flush()
}

func newPolicyApplyCommand(kube *KubeFlags) *cobra.Command {
	f := &policyFlags{}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Add auto-release branches or set the branch restriction of a ContainerVersion",
		Long: `apply adds --auto-release-branch entries to spec.policy.autoReleaseBranches and
sets spec.policy.branchRestriction, leaving every other field alone (a JSON
merge patch with a resourceVersion precondition, retried on conflict).

A policy that conflicts with the controller-wide restrictions is refused:
an auto-release branch whose versions the controller never allows in the
CV's namespace, or a branch restriction none of whose branches it allows.
The restrictions are read from the settings ConfigMap (--configmap-key, key
policy-version-restriction) plus any --policy-version-restriction given to
"cvmanager run" that you repeat here.`,
		Example: `  cvmanager policy apply -n prod --cv web --auto-release-branch main
  cvmanager policy apply -n prod --cv web --branch-restriction '^(main|release-.*)$'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.branches) == 0 && f.restriction == "" {
				return fmt.Errorf("nothing to apply: give --auto-release-branch or --branch-restriction")
			}
			return f.edit(cmd.Context(), cmd.OutOrStdout(), kube, f.apply)
		},
	}
	f.addTargetFlags(cmd)
	cmd.Flags().StringArrayVar(&f.branches, "auto-release-branch", nil, "branch whose versions deploy at once (repeatable)")
	cmd.Flags().StringVar(&f.restriction, "branch-restriction", "", "regular expression (anchored) every deployed version's branch must match")
	cmd.Flags().StringVar(&f.settings, "configmap-key", DefaultSettingsConfigMap, "namespace/name of the controller's settings ConfigMap (empty: do not read it)")
	cmd.Flags().StringArrayVar(&f.restrictions, "policy-version-restriction", nil, "<namespace-regex>=<version-regex> the controller enforces from its flags (repeatable)")
	return cmd
}

func newPolicyDeleteCommand(kube *KubeFlags) *cobra.Command {
	f := &policyFlags{}
	cmd := &cobra.Command{
		Use:     "delete",
		Short:   "Remove auto-release branches or the branch restriction of a ContainerVersion",
		Example: "  cvmanager policy delete -n prod --cv web --auto-release-branch main --branch-restriction",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.branches) == 0 && !f.deleteRestriction {
				return fmt.Errorf("nothing to delete: give --auto-release-branch or --branch-restriction")
			}
			return f.edit(cmd.Context(), cmd.OutOrStdout(), kube, f.delete)
		},
	}
	f.addTargetFlags(cmd)
	cmd.Flags().StringArrayVar(&f.branches, "auto-release-branch", nil, "branch to remove from autoReleaseBranches (repeatable)")
	cmd.Flags().BoolVar(&f.deleteRestriction, "branch-restriction", false, "remove the branch restriction")
	return cmd
}

func (f *policyFlags) addTargetFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	cmd.Flags().StringVar(&f.name, "cv", "", "name of the ContainerVersion (required)")
	_ = cmd.MarkFlagRequired("cv")
}

// editFunc changes a copy of a CV's policy, or says why it may not.
type editFunc func(ctx context.Context, kube kubernetes.Interface, cv *cvv1.ContainerVersion, p *cvv1.PolicySpec) error

// edit reads the CV, applies change to its policy and writes the branch
// fields back with a merge patch that carries the resourceVersion read, so
// a concurrent writer is never overwritten: on a conflict it starts again.
func (f *policyFlags) edit(ctx context.Context, out io.Writer, kube *KubeFlags, change editFunc) error {
	kubeClient, cvClient, err := clients(kube)
	if err != nil {
		return err
	}
	cvs := cvClient.CvmanagerV1alpha1().ContainerVersions(f.ns(kube.Namespace()))
	var p *cvv1.PolicySpec
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cv, err := cvs.Get(ctx, f.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("ContainerVersion %s/%s: %w", f.ns(kube.Namespace()), f.name, err)
		}
		p = &cvv1.PolicySpec{}
		if cv.Spec.Policy != nil {
			p = cv.Spec.Policy.DeepCopy()
		}
		if err := change(ctx, kubeClient, cv, p); err != nil {
			return err
		}
		_, err = cvs.Patch(ctx, cv.Name, types.MergePatchType, branchPatch(cv.ResourceVersion, p), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "policy of %s/%s: autoReleaseBranches [%s], branchRestriction %s\n",
		f.ns(kube.Namespace()), f.name, strings.Join(p.AutoReleaseBranches, ", "), orDash(p.BranchRestriction))
	return err
}

// branchPatch is a JSON merge patch of the two branch fields only (null
// removes one), guarded by resourceVersion.
func branchPatch(resourceVersion string, p *cvv1.PolicySpec) []byte {
	fields := map[string]any{"autoReleaseBranches": nil, "branchRestriction": nil}
	if len(p.AutoReleaseBranches) > 0 {
		fields["autoReleaseBranches"] = p.AutoReleaseBranches
	}
	if p.BranchRestriction != "" {
		fields["branchRestriction"] = p.BranchRestriction
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"spec":     map[string]any{"policy": fields},
	})
	return patch
}

func (f *policyFlags) delete(_ context.Context, _ kubernetes.Interface, cv *cvv1.ContainerVersion, p *cvv1.PolicySpec) error {
	for _, b := range f.branches {
		i := slices.Index(p.AutoReleaseBranches, b)
		if i < 0 {
			return fmt.Errorf("%s/%s does not auto-release branch %s (autoReleaseBranches [%s])",
				cv.Namespace, cv.Name, b, strings.Join(p.AutoReleaseBranches, ", "))
		}
		p.AutoReleaseBranches = slices.Delete(p.AutoReleaseBranches, i, i+1)
	}
	if f.deleteRestriction {
		if p.BranchRestriction == "" {
			return fmt.Errorf("%s/%s has no branch restriction", cv.Namespace, cv.Name)
		}
		p.BranchRestriction = ""
	}
	return nil
}

// apply adds the branches and sets the restriction, then refuses a policy
// the CV's versionSyntax cannot serve or the controller would contradict.
func (f *policyFlags) apply(ctx context.Context, kube kubernetes.Interface, cv *cvv1.ContainerVersion, p *cvv1.PolicySpec) error {
	for _, b := range f.branches {
		if !slices.Contains(p.AutoReleaseBranches, b) {
			p.AutoReleaseBranches = append(p.AutoReleaseBranches, b)
		}
	}
	if f.restriction != "" {
		p.BranchRestriction = f.restriction
	}
	if err := checkBranchPolicy(cv, p); err != nil {
		return err
	}
	restrictions, source, err := f.controllerRestrictions(ctx, kube)
	if err != nil {
		return err
	}
	syntax, _ := registry.CompileVersionSyntax(cv.Spec.VersionSyntax) // checked by checkBranchPolicy
	if conflicts := policy.BranchConflicts(p, syntax, restrictions, cv.Namespace); len(conflicts) > 0 {
		return fmt.Errorf("policy for %s/%s refused (restrictions from %s):\n  %s", cv.Namespace, cv.Name, source, strings.Join(conflicts, "\n  "))
	}
	return nil
}
