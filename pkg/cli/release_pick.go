package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"

	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// picked is the version `release --branch` or `--artifact` chose.
type picked struct {
	version, digest, branch string
}

// releasePicked releases the version --branch or --artifact names: check
// the CV's branch restriction and signature policy, approve the digest,
// point the CV's tag at it and ask the controller to poll now. The
// approval goes first, so the controller never holds the moved tag.
func (o *releaseOptions) releasePicked(ctx context.Context, out io.Writer, kube *KubeFlags, cv *cvv1.ContainerVersion) error {
	if p := cv.Spec.Policy; p != nil && p.Selection != "" && p.Selection != cvv1.SelectDigest {
		return fmt.Errorf("%s/%s selects versions by %s, not by its tag: --branch and --artifact move the tag, which it does not follow",
			cv.Namespace, cv.Name, p.Selection)
	}
	kubeClient, cvClient, err := clients(kube)
	if err != nil {
		return err
	}
	reg, err := o.registry.registry()
	if err != nil {
		return err
	}
	if o.registry.dockerConfig != "" {
		_ = os.Setenv("DOCKER_CONFIG", o.registry.dockerConfig) // read by go-containerregistry's default keychain
	}
	repo := registry.Repo{Name: cv.Spec.ImageRepo, Auth: o.registry.auth()}
	syntax, err := registry.CompileVersionSyntax(cv.Spec.VersionSyntax)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", cv.Namespace, cv.Name, err)
	}
	pick, err := o.pick(ctx, reg, repo, syntax, cv)
	if err != nil {
		return err
	}
	if v := policy.CheckBranchRestriction(cv.Spec.Policy, syntax, pick.version); !v.Allowed {
		return fmt.Errorf("%s/%s refuses %s: %s", cv.Namespace, cv.Name, pick.version, v.Message)
	}
	if !o.force {
		if err := newSignatureGate(kubeClient, reg).check(ctx, []cvv1.ContainerVersion{*cv}, repo, pick.digest); err != nil {
			return err
		}
	}
	if cv.Status.CurrDigest == pick.digest && cv.Status.CurrStatus == cvv1.StatusSuccess {
		_, err := fmt.Fprintf(out, "%s (%s) already runs in %s/%s\n", pick.version, pick.digest, cv.Namespace, cv.Name)
		return err
	}
	if err := approve(ctx, cvClient, cv, pick.digest); err != nil {
		return err
	}
	if err := moveTag(ctx, reg, repo, pick, cv.Spec.Tag); err != nil {
		return err
	}
	if err := controller.NewRequests(cvClient, clock.RealClock{}).TriggerPoll(ctx, cv.Namespace, cv.Name, history.TriggerRelease); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "released %s (%s)%s for %s/%s: %s:%s points to it\n",
		pick.version, pick.digest, branchNote(pick.branch), cv.Namespace, cv.Name, cv.Spec.ImageRepo, cv.Spec.Tag)
	return err
}

func branchNote(branch string) string {
	if branch == "" {
		return ""
	}
	return ", newest of branch " + branch
}

// moveTag points tag at the picked version, checking the version tag still
// names the digest that was checked.
func moveTag(ctx context.Context, reg registry.Registry, repo registry.Repo, pick picked, tag string) error {
	img, err := reg.AddTags(ctx, repo, pick.version, []string{tag})
	if err != nil {
		return fmt.Errorf("pointing %s:%s at %s: %w", repo.Name, tag, pick.version, err)
	}
	if img.Digest != pick.digest {
		return fmt.Errorf("%s:%s moved to %s while it was being released; %s now points there: check and release again",
			repo.Name, pick.version, img.Digest, tag)
	}
	return nil
}

// pick finds the version --branch or --artifact names, with its digest.
func (o *releaseOptions) pick(ctx context.Context, reg *registry.Router, repo registry.Repo, syntax *regexp.Regexp, cv *cvv1.ContainerVersion) (picked, error) {
	if o.artifact != "" {
		return pickArtifact(ctx, reg, repo, syntax, o.artifact)
	}
	if !policy.HasBranchGroup(syntax) {
		return picked{}, fmt.Errorf("%s/%s: versionSyntax %s has no named group %q, so versions carry no branch; "+
			"e.g. (?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})", cv.Namespace, cv.Name, syntax, policy.BranchGroup)
	}
	version, err := NewestOfBranch(ctx, reg, provenance.CreatedReader{Reader: reg}, repo, syntax, o.branch)
	if err != nil {
		return picked{}, err
	}
	img, err := reg.Resolve(ctx, registry.ResolveRequest{Repo: repo, Tag: version})
	if err != nil {
		return picked{}, err
	}
	return picked{version: version, digest: img.Digest, branch: o.branch}, nil
}

func pickArtifact(ctx context.Context, reg registry.Registry, repo registry.Repo, syntax *regexp.Regexp, version string) (picked, error) {
	if !syntax.MatchString(version) {
		return picked{}, fmt.Errorf("version %q does not match the CV's versionSyntax %s", version, syntax)
	}
	img, err := reg.Resolve(ctx, registry.ResolveRequest{Repo: repo, Tag: version})
	if registry.IsNotFound(err) {
		return picked{}, fmt.Errorf("the registry has no version %s in %s: %w", version, repo.Name, err)
	}
	if err != nil {
		return picked{}, fmt.Errorf("looking up version %s in %s: %w", version, repo.Name, err)
	}
	branch, _ := policy.BranchOf(syntax, version)
	return picked{version: version, digest: img.Digest, branch: branch}, nil
}

// TagLister is the part of registry.Registry NewestOfBranch needs.
type TagLister interface {
	ListTags(ctx context.Context, repo registry.Repo) ([]string, error)
}

// NewestOfBranch is the newest version tag of branch in repo: the tags
// whose versionSyntax branch group is branch, ordered by their image's
// creation time (read only for those candidates), ties broken by the
// registry's tag order.
func NewestOfBranch(ctx context.Context, tags TagLister, created registry.CreatedReader, repo registry.Repo, syntax *regexp.Regexp, branch string) (string, error) {
	all, err := tags.ListTags(ctx, repo)
	if err != nil {
		return "", err
	}
	candidates := policy.BranchTags(syntax, all, branch)
	if len(candidates) == 0 {
		return "", fmt.Errorf("%s has no version of branch %s (versionSyntax %s, %d tags)", repo.Name, branch, syntax, len(all))
	}
	for i := range candidates {
		if candidates[i].Created, err = created.Created(ctx, repo, candidates[i].Tag); err != nil {
			return "", fmt.Errorf("reading when %s:%s was built: %w", repo.Name, candidates[i].Tag, err)
		}
	}
	newest, err := policy.NewestCandidate(candidates)
	return newest.Tag, err
}
