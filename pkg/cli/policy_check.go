package cli

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"cvmanager.dev/cvmanager/pkg/anchored"
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// checkBranchPolicy says, before the apiserver's admission rules do and in
// the CV's own terms, why a branch policy cannot work.
func checkBranchPolicy(cv *cvv1.ContainerVersion, p *cvv1.PolicySpec) error {
	syntax, err := registry.CompileVersionSyntax(cv.Spec.VersionSyntax)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", cv.Namespace, cv.Name, err)
	}
	if !policy.HasBranchGroup(syntax) {
		return fmt.Errorf("%s/%s: versionSyntax %s has no named group %q, so versions carry no branch; "+
			"set e.g. versionSyntax: (?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10}) first", cv.Namespace, cv.Name, syntax, policy.BranchGroup)
	}
	if p.Selection != "" && p.Selection != cvv1.SelectDigest {
		return fmt.Errorf("%s/%s selects versions by %s: branch policies need selection Digest", cv.Namespace, cv.Name, p.Selection)
	}
	if len(p.AutoReleaseBranches) > 0 && p.ReleaseMode == "Manual" {
		return fmt.Errorf("%s/%s has releaseMode Manual, which holds every branch: auto-release branches need releaseMode Auto", cv.Namespace, cv.Name)
	}
	if p.BranchRestriction == "" {
		return nil
	}
	re, err := anchored.Compile(p.BranchRestriction)
	if err != nil {
		return fmt.Errorf("--branch-restriction %q: %w", p.BranchRestriction, err)
	}
	for _, b := range p.AutoReleaseBranches {
		if !re.MatchString(b) {
			return fmt.Errorf("auto-release branch %s does not match the branch restriction %s: its versions would never deploy", b, p.BranchRestriction)
		}
	}
	return nil
}

// controllerRestrictions are the controller-wide version restrictions:
// the settings ConfigMap's policy-version-restriction key plus those given
// as flags. source names where they came from, for the refusal message.
func (f *policyFlags) controllerRestrictions(ctx context.Context, kube kubernetes.Interface) ([]policy.Restriction, string, error) {
	specs, source, err := f.restrictionSpecs(ctx, kube)
	if err != nil {
		return nil, "", err
	}
	restrictions, err := policy.ParseRestrictions(specs)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	return restrictions, source, nil
}

// restrictionSpecs are the controller-wide restrictions as written
// (<namespace-regex>=<version-regex>) and where they came from.
func (f *policyFlags) restrictionSpecs(ctx context.Context, kube kubernetes.Interface) ([]string, string, error) {
	specs := append([]string(nil), f.restrictions...)
	source := "--policy-version-restriction"
	if f.settings != "" {
		ns, name, err := parseConfigMapKey(f.settings)
		if err != nil {
			return nil, "", err
		}
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, "", fmt.Errorf("cannot read the controller-wide restrictions in ConfigMap %s (key %s): %w; "+
				"pass --configmap-key= to skip it", f.settings, settingRestrictions, err)
		default:
			specs = append(specs, nonEmptyLines(cm.Data[settingRestrictions])...)
		}
		source = fmt.Sprintf("settings ConfigMap %s key %s and %s", f.settings, settingRestrictions, source)
	}
	return specs, source, nil
}

// restrictionsFor are the specs whose namespace pattern matches namespace:
// what the controller enforces on a CV there, whatever its own policy.
func restrictionsFor(specs []string, namespace string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		r, err := policy.ParseRestriction(spec)
		if err != nil {
			return nil, err
		}
		if r.Namespace.MatchString(namespace) {
			out = append(out, spec)
		}
	}
	return out, nil
}
