package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
)

// taggerFlags are the original cvmanager's tagger flags plus --docker-config
// and the endpoint overrides.
type taggerFlags struct {
	repo, version, versionPattern string
	tags                          []string
	username, password            string
	dockerConfig                  string
	insecure                      bool
	caFile                        string
	ecrEndpoint, hubURL           string
	output                        string
	provider                      string
}

func (f *taggerFlags) add(cmd *cobra.Command, withTags, withVersion bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.repo, "repo", "", "image repository, e.g. registry.example.com/team/app (required)")
	_ = cmd.MarkFlagRequired("repo")
	if withVersion {
		fs.StringVar(&f.version, "version", "", "the version tag (e.g. the git SHA) whose image is meant (required)")
		_ = cmd.MarkFlagRequired("version")
	}
	if withTags {
		fs.StringSliceVar(&f.tags, "tags", nil, "tags, comma-separated (required)")
		_ = cmd.MarkFlagRequired("tags")
	}
	fs.StringVar(&f.versionPattern, "version-pattern", "", "regular expression a --version must match (e.g. [0-9a-f]{40})")
	fs.StringVar(&f.username, "username", "", "registry user (default: from the Docker config; ECR uses the AWS credential chain)")
	fs.StringVar(&f.password, "password", "", "registry password or token")
	fs.StringVar(&f.provider, "provider", "", "cloud identity when no --username or Docker config entry applies: generic, aws, gcp or azure (default: from the repository's host)")
	fs.StringVar(&f.dockerConfig, "docker-config", "", "directory of a Docker config.json (default: $DOCKER_CONFIG or ~/.docker)")
	fs.BoolVar(&f.insecure, "insecure", false, "reach the registry over plain HTTP (local registries)")
	fs.StringVar(&f.caFile, "registry-ca-file", "", "PEM bundle of extra CAs for the registry")
	fs.StringVar(&f.ecrEndpoint, "ecr-endpoint", "", "override the ECR API endpoint (VPC endpoint URL)")
	fs.StringVar(&f.hubURL, "docker-hub-api", registry.DefaultHubURL, "Docker Hub API URL (tag removal on Docker Hub)")
	fs.StringVarP(&f.output, "output", "o", "text", "output: text or json")
}

// registry builds the router for one CLI call.
func (f *taggerFlags) registry() (*registry.Router, error) {
	transport, err := poller.Transport(f.caFile)
	if err != nil {
		return nil, err
	}
	return registry.NewRouter(
		registry.OCIOptions{Transport: transport, Insecure: f.insecure},
		registry.ECROptions{Endpoint: f.ecrEndpoint},
		registry.HubOptions{URL: f.hubURL},
	), nil
}

// open checks the flags and returns the repository they name and a
// registry client for it.
func (f *taggerFlags) open() (registry.Repo, *registry.Router, error) {
	repo, err := f.target()
	if err != nil {
		return registry.Repo{}, nil, err
	}
	reg, err := f.registry()
	return repo, reg, err
}

// target checks the flags and names the repository with its credentials:
// --username/--password, else the Docker config (--docker-config,
// $DOCKER_CONFIG or ~/.docker) as `docker` would read it, else the cloud
// identity of --provider or of the host.
func (f *taggerFlags) target() (registry.Repo, error) {
	if f.output != "text" && f.output != "json" {
		return registry.Repo{}, fmt.Errorf("unknown output format %q: use text or json", f.output)
	}
	if _, err := registry.ParseRepository(f.repo, f.insecure); err != nil {
		return registry.Repo{}, fmt.Errorf("--repo: %w", err)
	}
	if err := f.checkVersion(); err != nil {
		return registry.Repo{}, err
	}
	provider, err := registry.ParseProvider(f.provider)
	if err != nil {
		return registry.Repo{}, fmt.Errorf("--provider: %w", err)
	}
	if f.dockerConfig != "" {
		_ = os.Setenv("DOCKER_CONFIG", f.dockerConfig) // read by go-containerregistry's default keychain
	}
	auth := registry.Auth{Username: f.username, Password: f.password, DockerConfig: true, Provider: provider}
	return registry.Repo{Name: f.repo, Auth: auth}, nil
}

func (f *taggerFlags) checkVersion() error {
	if f.versionPattern == "" || f.version == "" {
		return nil
	}
	re, err := registry.CompileVersionSyntax(f.versionPattern)
	if err != nil {
		return fmt.Errorf("--version-pattern: %w", err)
	}
	if !re.MatchString(f.version) {
		return fmt.Errorf("version %q does not match --version-pattern %s", f.version, f.versionPattern)
	}
	return nil
}

// newTaggerCommand is `cr tags get|add|remove`, used by CI to move tags.
func newTaggerCommand(kube *KubeFlags) *cobra.Command {
	tags := &cobra.Command{
		Use:   "tags",
		Short: "Get, add and remove image tags (used by CI)",
		Long: `Get, add and remove image tags, as CI does to promote a build:

  cvmanager cr tags add --repo registry.example.com/team/app --version 3f2a9c1 --tags env-prod

Works with any OCI/Docker v2 registry, Amazon ECR (AWS credential chain) and
Docker Hub. Adding a tag never pulls layers. Removing a single tag needs a
registry API for it (ECR, Docker Hub); elsewhere it fails with a clear error.
Exit code 0 on success, 1 on any error.`,
	}
	tags.AddCommand(newTagsGetCommand(), newTagsAddCommand(kube), newTagsRemoveCommand())
	return tags
}

func newTagsGetCommand() *cobra.Command {
	f := &taggerFlags{}
	cmd := &cobra.Command{
		Use:     "get",
		Short:   "Show every tag on the image a version points to",
		Example: "  cvmanager cr tags get --repo ghcr.io/team/app --version 3f2a9c1 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, reg, err := f.open()
			if err != nil {
				return err
			}
			img, err := reg.TagsOf(cmd.Context(), repo, f.version)
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), map[string]any{"repo": f.repo, "version": f.version, "digest": img.Digest, "tags": img.Tags},
				fmt.Sprintf("%s:%s (%s): %s", f.repo, f.version, img.Digest, strings.Join(img.Tags, ", ")))
		},
	}
	f.add(cmd, false, true)
	return cmd
}

func newTagsAddCommand(kube *KubeFlags) *cobra.Command {
	f := &taggerFlags{}
	var force bool
	var cvFlag string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add tags to the image a version points to (no layers are pulled)",
		Long: `Add tags to the image a version points to (no layers are pulled).

Before moving a tag it checks the signature policy (spec.policy.verify,
Enforce) of the ContainerVersions that follow it: the one --cv names, or
every CV of --repo at one of --tags, listed through the kubeconfig when one
is available. An image they would refuse is not tagged unless --force.`,
		Example: "  cvmanager cr tags add --repo ghcr.io/team/app --version 3f2a9c1 --tags env-prod,env-stage",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, reg, err := f.open()
			if err != nil {
				return err
			}
			var unchecked string
			if !force {
				if unchecked, err = checkTagFollowers(cmd, kube, reg, repo, f, cvFlag); err != nil {
					return err
				}
			}
			img, err := reg.AddTags(cmd.Context(), repo, f.version, f.tags)
			if err != nil {
				return err
			}
			if unchecked != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), unchecked)
			}
			return f.print(cmd.OutOrStdout(), map[string]any{"repo": f.repo, "version": f.version, "digest": img.Digest, "added": f.tags},
				fmt.Sprintf("tagged %s:%s (%s) as %s", f.repo, f.version, img.Digest, strings.Join(f.tags, ", ")))
		},
	}
	f.add(cmd, true, true)
	cmd.Flags().BoolVar(&force, "force", false, "tag even an image whose signature the following CVs' policy would refuse")
	cmd.Flags().StringVar(&cvFlag, "cv", "", "namespace/name of the ContainerVersion whose policy to check (default: every CV of --repo at one of --tags)")
	return cmd
}

// checkTagFollowers refuses to tag an image the CVs following the tags
// would refuse. Without a kubeconfig (and no --cv) nothing can be checked:
// it returns the warning to print once the tag has moved, so a command
// that fails anyway (an unknown version) prints only its error.
func checkTagFollowers(cmd *cobra.Command, kube *KubeFlags, reg *registry.Router, repo registry.Repo, f *taggerFlags, cvFlag string) (string, error) {
	ctx := cmd.Context()
	kubeClient, cvClient, err := clients(kube)
	var cvs []cvv1.ContainerVersion
	if err == nil {
		cvs, err = followers(ctx, cvClient, cvFlag, kube.Namespace(), f.repo, f.tags)
	}
	switch {
	case err != nil && cvFlag != "":
		return "", err
	case err != nil:
		return fmt.Sprintf("warning: signature policies not checked, the ContainerVersions cannot be listed: %v", err), nil
	case len(cvs) == 0:
		return "", nil
	}
	img, err := reg.TagsOf(ctx, repo, f.version)
	if err != nil {
		return "", err
	}
	gate := newSignatureGate(kubeClient, reg)
	gate.refused = func(cv *cvv1.ContainerVersion, detail string) error {
		return fmt.Errorf("%w: %s stays where it is: CV %s/%s follows it and enforces a signature policy, and %s "+
			"(--force to move the tag anyway)", ErrTagMoveRefused, strings.Join(f.tags, ", "), cv.Namespace, cv.Name, detail)
	}
	return "", gate.check(ctx, cvs, repo, img.Digest)
}

// ErrTagMoveRefused: `cr tags add` did not move a tag onto an image that a
// ContainerVersion following the tag would refuse.
var ErrTagMoveRefused = errors.New("tag move refused")

func newTagsRemoveCommand() *cobra.Command {
	f := &taggerFlags{}
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove tags (ECR, Docker Hub; never the image itself)",
		Long: `Remove tags from a repository. The image stays (on ECR it goes when its last
tag does). Plain v2 registries can only delete a whole manifest, which would
take every tag on the image with it, so there the command refuses.`,
		Example: "  cvmanager cr tags remove --repo 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app --tags env-prod",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, reg, err := f.open()
			if err != nil {
				return err
			}
			if err := reg.RemoveTags(cmd.Context(), repo, f.tags); err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), map[string]any{"repo": f.repo, "removed": f.tags},
				fmt.Sprintf("removed %s from %s", strings.Join(f.tags, ", "), f.repo))
		},
	}
	f.add(cmd, true, false)
	return cmd
}

func (f *taggerFlags) print(w io.Writer, v any, text string) error {
	if f.output == "json" {
		return json.NewEncoder(w).Encode(v)
	}
	_, err := fmt.Fprintln(w, text)
	return err
}
