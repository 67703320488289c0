package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
)

// taggerFlags are the original cvmanager's tagger flags plus --docker-config.
type taggerFlags struct {
	repo, version, versionPattern string
	tags                          []string
	username, password            string
	dockerConfig                  string
	insecure                      bool
	output                        string
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
	fs.StringVar(&f.username, "username", "", "registry user (default: from the Docker config)")
	fs.StringVar(&f.password, "password", "", "registry password or token")
	fs.StringVar(&f.dockerConfig, "docker-config", "", "directory of a Docker config.json (default: $DOCKER_CONFIG or ~/.docker)")
	fs.BoolVar(&f.insecure, "insecure", false, "reach the registry over plain HTTP (local registries)")
	fs.StringVarP(&f.output, "output", "o", "text", "output: text or json")
}

// options authenticate with --username/--password, else with the Docker
// config (--docker-config, $DOCKER_CONFIG or ~/.docker), as `docker` would.
func (f *taggerFlags) options(cmd *cobra.Command) []remote.Option {
	opts := []remote.Option{remote.WithContext(cmd.Context())}
	if f.username != "" {
		return append(opts, remote.WithAuth(&authn.Basic{Username: f.username, Password: f.password}))
	}
	if f.dockerConfig != "" {
		_ = os.Setenv("DOCKER_CONFIG", f.dockerConfig) // read by authn.DefaultKeychain
	}
	return append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

func (f *taggerFlags) ref(tag string) (name.Tag, error) {
	var opts []name.Option
	if f.insecure {
		opts = append(opts, name.Insecure)
	}
	if strings.ContainsAny(f.repo, "@") || regexp.MustCompile(`:[^/]*$`).MatchString(f.repo) {
		return name.Tag{}, fmt.Errorf("--repo %q must be a repository without tag or digest", f.repo)
	}
	ref, err := name.NewTag(f.repo+":"+tag, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid reference %s:%s: %w", f.repo, tag, err)
	}
	return ref, nil
}

func (f *taggerFlags) checkVersion() error {
	if f.versionPattern == "" {
		return nil
	}
	re, err := regexp.Compile("^(?:" + f.versionPattern + ")$")
	if err != nil {
		return fmt.Errorf("--version-pattern: %w", err)
	}
	if !re.MatchString(f.version) {
		return fmt.Errorf("version %q does not match --version-pattern %s", f.version, f.versionPattern)
	}
	return nil
}

// newTaggerCommand is `cr tags get|add|remove`, used by CI to move tags.
func newTaggerCommand() *cobra.Command {
	tags := &cobra.Command{Use: "tags", Short: "Get, add and remove image tags (used by CI)"}
	tags.AddCommand(newTagsGetCommand(), newTagsAddCommand(), newTagsRemoveCommand())
	return tags
}

func newTagsGetCommand() *cobra.Command {
	f := &taggerFlags{}
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show every tag on the image a version points to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkVersion(); err != nil {
				return err
			}
			tags, digest, err := tagsOf(cmd, f)
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), map[string]any{"repo": f.repo, "version": f.version, "digest": digest, "tags": tags},
				fmt.Sprintf("%s:%s (%s): %s", f.repo, f.version, digest, strings.Join(tags, ", ")))
		},
	}
	f.add(cmd, false, true)
	return cmd
}

func tagsOf(cmd *cobra.Command, f *taggerFlags) ([]string, string, error) {
	ref, err := f.ref(f.version)
	if err != nil {
		return nil, "", err
	}
	opts := f.options(cmd)
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("%s:%s: %w", f.repo, f.version, err)
	}
	all, err := remote.List(ref.Context(), opts...)
	if err != nil {
		return nil, "", fmt.Errorf("listing tags of %s: %w", f.repo, err)
	}
	var tags []string
	for _, tag := range all {
		if d, err := remote.Head(ref.Context().Tag(tag), opts...); err == nil && d.Digest == desc.Digest {
			tags = append(tags, tag)
		}
	}
	sort.Strings(tags)
	return tags, desc.Digest.String(), nil
}

func newTagsAddCommand() *cobra.Command {
	f := &taggerFlags{}
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add tags to the image a version points to (no layers are pulled)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkVersion(); err != nil {
				return err
			}
			src, err := f.ref(f.version)
			if err != nil {
				return err
			}
			opts := f.options(cmd)
			// The manifest's exact bytes and media type are pushed under each
			// new tag: the same digest, nothing re-built or pulled.
			desc, err := remote.Get(src, opts...)
			if err != nil {
				return fmt.Errorf("%s:%s: %w", f.repo, f.version, err)
			}
			for _, tag := range f.tags {
				dst, err := f.ref(tag)
				if err != nil {
					return err
				}
				if err := remote.Tag(dst, desc, opts...); err != nil {
					return fmt.Errorf("tagging %s:%s as %s: %w", f.repo, f.version, tag, err)
				}
			}
			return f.print(cmd.OutOrStdout(), map[string]any{"repo": f.repo, "version": f.version, "digest": desc.Digest.String(), "added": f.tags},
				fmt.Sprintf("tagged %s:%s (%s) as %s", f.repo, f.version, desc.Digest, strings.Join(f.tags, ", ")))
		},
	}
	f.add(cmd, true, true)
	return cmd
}

// newTagsRemoveCommand refuses on plain v2 registries: the protocol can only
// delete a manifest, which would remove every tag on the image, not one.
func newTagsRemoveCommand() *cobra.Command {
	f := &taggerFlags{}
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove tags (where the registry supports removing a single tag)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := f.ref(f.tags[0]); err != nil {
				return err
			}
			return fmt.Errorf("removing tags %s from %s is not supported by this registry: the v2 API can only delete the manifest, which would remove every tag on the image",
				strings.Join(f.tags, ","), f.repo)
		},
	}
	f.add(cmd, true, false)
	return cmd
}

func (f *taggerFlags) print(w io.Writer, v any, text string) error {
	switch f.output {
	case "json":
		return json.NewEncoder(w).Encode(v)
	case "text", "":
		_, err := fmt.Fprintln(w, text)
		return err
	default:
		return fmt.Errorf("unknown output format %q: use text or json", f.output)
	}
}
