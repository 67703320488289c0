package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/promote"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// promoteOptions are the flags of `cvmanager promote`.
type promoteOptions struct {
	from, to       string
	service        serviceFlags
	dryRun         bool
	actor          string
	allowDowngrade bool
	restrictions   []string
	registry       taggerFlags
	output         string
	force          bool
	// Across clusters: contexts of the kubeconfig, or one kubeconfig per
	// cluster name used in --from/--to as cluster/namespace/name.
	fromContext, toContext string
	clusterConfigs         []string
	minSoak                time.Duration
	env, envOrder          string
}

func newPromoteCommand(kube *KubeFlags) *cobra.Command {
	o := &promoteOptions{}
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Move the version that last succeeded in one ContainerVersion to another's tag",
		Long: `Promote tags the version that last succeeded in the source ContainerVersion
(status.successVersion, checked by digest) with the tag the target watches, so
the target's controller rolls it out with the target's own strategy and checks.

It refuses a source that never succeeded, a digest that failed there, an image
of another repository, and a version the target's policy (allowedVersions,
branchRestriction read with the target's versionSyntax), the controller's
restrictions (--policy-version-restriction, as given to run) or the
no-downgrade rule block, and an image whose signature the target's
spec.policy.verify (Enforce) would refuse (--force tags it anyway). The intent (promote, from, actor) is recorded in the
target's history. --dry-run checks everything and changes nothing.

--from and --to take namespace/name, or a name in the kubeconfig's namespace;
with --service they take environments instead: the CV labelled
<--label>=<service> in that namespace (or with <--env-label>=<environment>).
With --service and --env, the source is the environment before --env in the
service's chain (dev → staging → prod), declared with --env-order or the
annotation ` + EnvOrderAnnotation + ` on the service's CVs.

Across clusters, the source is read in one cluster and the target in another:
--from-context and --to-context pick contexts of the kubeconfig, or --from and
--to take cluster/namespace/name, where cluster is a name given a kubeconfig
with --cluster-kubeconfig (else a context of the kubeconfig).

The soak is --min-soak, by default the target's
spec.promotion.from.minSoakSeconds, and none when the target has no
spec.promotion. Across clusters, and in one cluster when the soak is above
zero, the source must have run its version with status Success, not drifted
(and signed when signatures apply) for the soak; with no soak it must still be
Success on that version now. Each refusal names its reason (SourceFailing,
SourceDrifted, SourceUnverified, Soaking). In one cluster with no soak this
gate is skipped: the source's last success is promoted even while the source
is drifted or rolls out another version.`,
		Example: `  cvmanager promote --from staging/web --to prod/web --dry-run
  cvmanager promote --from-context staging --to-context prod --from web/web --to web/web --min-soak 24h
  cvmanager promote --cluster-kubeconfig staging=staging.yaml --cluster-kubeconfig prod=prod.yaml \
      --from staging/web/web --to prod/web/web
  cvmanager promote --service web --from staging --to prod --actor "$CI_USER" --insecure
  cvmanager promote --service web --env prod --env-order dev,staging,prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.OutOrStdout(), kube) },
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "source ContainerVersion (namespace/name) or, with --service, environment (required unless --env)")
	f.StringVar(&o.to, "to", "", "target ContainerVersion (namespace/name) or, with --service, environment (required unless --env)")
	f.StringVar(&o.service.service, "service", "", "pick --from and --to by environment: the CVs of this service")
	f.StringVar(&o.env, "env", "", "with --service: promote into this environment from the one before it in the service's chain (--env-order or annotation "+EnvOrderAnnotation+")")
	f.StringVar(&o.envOrder, "env-order", "", "the environment chain, in promotion order, e.g. dev,staging,prod (default: the service CVs' "+EnvOrderAnnotation+" annotation)")
	o.service.addLabelFlags(f)
	f.BoolVar(&o.dryRun, "dry-run", false, "check and show the promotion without tagging or recording anything")
	f.StringVar(&o.actor, "actor", "", "who promotes, for the history (default: the Kubernetes user)")
	f.BoolVar(&o.allowDowngrade, "allow-downgrade", false, "promote a version older than the target's (the target still holds it until `cvmanager release`)")
	f.StringArrayVar(&o.restrictions, "policy-version-restriction", nil, "<namespace-regex>=<version-regex> the controller enforces (repeatable)")
	o.registry.addRegistryFlags(f)
	f.StringVarP(&o.output, "output", "o", "text", "output: text or json")
	f.BoolVar(&o.force, "force", false, "promote even an image whose signature the target's policy would refuse")
	f.StringVar(&o.fromContext, "from-context", "", "kubeconfig context of the source's cluster (default: --context)")
	f.StringVar(&o.toContext, "to-context", "", "kubeconfig context of the target's cluster (default: --context)")
	f.StringArrayVar(&o.clusterConfigs, "cluster-kubeconfig", nil, "<cluster>=<kubeconfig file>, for --from/--to as cluster/namespace/name (repeatable)")
	f.DurationVar(&o.minSoak, "min-soak", -1, "how long the source must have run the version with Success (default: the target's spec.promotion.from.minSoakSeconds; none without spec.promotion)")
	return cmd
}

func (o *promoteOptions) run(ctx context.Context, out io.Writer, kube *KubeFlags) error {
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("unknown output format %q: use text or json", o.output)
	}
	src, dst, err := o.sides(kube)
	if err != nil {
		return err
	}
	kubeClient, cvClient, err := clients(dst.kube)
	if err != nil {
		return err
	}
	if err := o.resolveChain(ctx, cvClient); err != nil {
		return err
	}
	p, err := o.promoter(kubeClient, cvClient)
	if err != nil {
		return err
	}
	srcClient := cvClient
	if src.kube != dst.kube {
		if _, srcClient, err = clients(src.kube); err != nil {
			return fmt.Errorf("source cluster %s: %w", src.name, err)
		}
		p.Source, p.SourceCluster, p.TargetCluster = srcClient, src.name, dst.name
	}
	from, err := o.service.resolve(ctx, srcClient, src.value, src.kube.Namespace())
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to, err := o.service.resolve(ctx, cvClient, dst.value, dst.kube.Namespace())
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	plan, err := p.Plan(ctx, from, to)
	if err != nil {
		return err
	}
	if err := o.checkSignature(ctx, kubeClient, cvClient, plan); err != nil {
		return err
	}
	if o.dryRun {
		return printPromotion(out, o.output, plan, "", true)
	}
	actor := o.actor
	if actor == "" {
		actor = kubeUser(ctx, kubeClient)
	}
	if _, err := p.Execute(ctx, plan, actor); err != nil {
		return err
	}
	return printPromotion(out, o.output, plan, actor, false)
}

// checkSignature refuses, unless --force, an image the target CV's
// signature policy would refuse to deploy.
func (o *promoteOptions) checkSignature(ctx context.Context, kubeClient kubernetes.Interface, cvClient versioned.Interface, plan *promote.Plan) error {
	if o.force {
		return nil
	}
	target, err := cvClient.CvmanagerV1alpha1().ContainerVersions(plan.To.Namespace).Get(ctx, plan.To.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	reg, err := o.registry.registry()
	if err != nil {
		return err
	}
	repo := registry.Repo{Name: plan.Repo, Auth: o.registry.auth()}
	return newSignatureGate(kubeClient, reg).check(ctx, []cvv1.ContainerVersion{*target}, repo, plan.Digest)
}

func (o *promoteOptions) promoter(kubeClient kubernetes.Interface, cvClient versioned.Interface) (*promote.Promoter, error) {
	restrictions, err := policy.ParseRestrictions(o.restrictions)
	if err != nil {
		return nil, fmt.Errorf("--policy-version-restriction: %w", err)
	}
	reg, err := o.registry.registry()
	if err != nil {
		return nil, err
	}
	if o.registry.dockerConfig != "" {
		_ = os.Setenv("DOCKER_CONFIG", o.registry.dockerConfig) // read by go-containerregistry's default keychain
	}
	p := &promote.Promoter{Kube: kubeClient, CVs: cvClient, Tagger: registryTagger{reg: reg, auth: o.registry.auth()},
		Restrictions: restrictions, AllowDowngrade: o.allowDowngrade,
		Poll: controller.NewRequests(cvClient, clock.RealClock{}).TriggerPoll}
	if o.minSoak >= 0 {
		p.MinSoak = &o.minSoak
	}
	return p, nil
}

// promoteSide is one end of a promotion: the cluster connection, its name
// for the output, and the --from/--to value within it.
type promoteSide struct {
	kube  *KubeFlags
	name  string
	value string
}

// sides resolves --from/--to (with --from-context, --to-context and
// --cluster-kubeconfig) into the two clusters. Both sides share kube's
// connection, and so one *KubeFlags, when neither names a cluster.
func (o *promoteOptions) sides(kube *KubeFlags) (src, dst promoteSide, err error) {
	configs := map[string]string{}
	for _, c := range o.clusterConfigs {
		name, path, ok := strings.Cut(c, "=")
		if !ok || name == "" || path == "" {
			return src, dst, fmt.Errorf("--cluster-kubeconfig %q: want <cluster>=<kubeconfig file>", c)
		}
		configs[name] = path
	}
	side := func(flag, value, context string) (promoteSide, error) {
		if parts := strings.Split(value, "/"); len(parts) == 3 && o.service.service == "" {
			if context != "" {
				return promoteSide{}, fmt.Errorf("--%s %q names a cluster and --%s-context another", flag, value, flag)
			}
			if path, ok := configs[parts[0]]; ok {
				return promoteSide{kube: &KubeFlags{Kubeconfig: path}, name: parts[0], value: parts[1] + "/" + parts[2]}, nil
			}
			context, value = parts[0], parts[1]+"/"+parts[2]
		}
		if context == "" || context == kube.Context {
			return promoteSide{kube: kube, name: kube.Context, value: value}, nil
		}
		return promoteSide{kube: &KubeFlags{Kubeconfig: kube.Kubeconfig, Context: context}, name: context, value: value}, nil
	}
	if src, err = side("from", o.from, o.fromContext); err != nil {
		return src, dst, err
	}
	if dst, err = side("to", o.to, o.toContext); err != nil {
		return src, dst, err
	}
	if src.kube != kube && dst.kube != kube && *src.kube == *dst.kube {
		dst.kube = src.kube // one cluster named twice
	}
	return src, dst, nil
}

// auth is the registry credentials the flags give, else the Docker config.
func (f *taggerFlags) auth() registry.Auth {
	return registry.Auth{Username: f.username, Password: f.password, DockerConfig: true}
}

// addRegistryFlags registers the registry connection flags of the tagger
// (without --repo, --tags and --version, which promote derives).
func (f *taggerFlags) addRegistryFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.username, "username", "", "registry user (default: from the Docker config; ECR uses the AWS credential chain)")
	fs.StringVar(&f.password, "password", "", "registry password or token")
	fs.StringVar(&f.dockerConfig, "docker-config", "", "directory of a Docker config.json (default: $DOCKER_CONFIG or ~/.docker)")
	fs.BoolVar(&f.insecure, "insecure", false, "reach the registry over plain HTTP (local registries)")
	fs.StringVar(&f.caFile, "registry-ca-file", "", "PEM bundle of extra CAs for the registry")
	fs.StringVar(&f.ecrEndpoint, "ecr-endpoint", "", "override the ECR API endpoint (VPC endpoint URL)")
	fs.StringVar(&f.hubURL, "docker-hub-api", registry.DefaultHubURL, "Docker Hub API URL")
}

// registryTagger adapts the registry layer to promote.Tagger. Registries
// retag by tag, so it checks the version tag still names the digest the
// source deployed before and after tagging.
type registryTagger struct {
	reg  registry.Registry
	auth registry.Auth
}

// AddTags implements promote.Tagger.
func (t registryTagger) AddTags(ctx context.Context, repo, version, digest string, tags []string) error {
	r := registry.Repo{Name: repo, Auth: t.auth}
	img, err := t.reg.TagsOf(ctx, r, version)
	if err != nil {
		return err
	}
	if img.Digest != digest {
		return fmt.Errorf("%w: %s:%s now points to %s, not %s, which the source deployed (the tag was re-pushed)",
			promote.ErrRefused, repo, version, img.Digest, digest)
	}
	tagged, err := t.reg.AddTags(ctx, r, version, tags)
	if err != nil {
		return err
	}
	if tagged.Digest != digest {
		return fmt.Errorf("%s:%s moved to %s while it was being promoted; %s now points there: check and promote again",
			repo, version, tagged.Digest, strings.Join(tags, ","))
	}
	return nil
}

// kubeUser is the user the cluster authenticates us as, for the history;
// $USER@host when the cluster cannot tell (SelfSubjectReview is off).
func kubeUser(ctx context.Context, kube kubernetes.Interface) string {
	review, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err == nil && review.Status.UserInfo.Username != "" {
		return review.Status.UserInfo.Username
	}
	host, _ := os.Hostname()
	return os.Getenv("USER") + "@" + host
}

func printPromotion(w io.Writer, output string, plan *promote.Plan, actor string, dryRun bool) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*promote.Plan
			DryRun bool   `json:"dryRun"`
			Actor  string `json:"actor,omitempty"`
		}{plan, dryRun, actor})
	}
	verb := "promoted"
	if dryRun {
		verb = "would promote"
	}
	from, to := plan.From.String(), plan.To.String()
	if plan.FromCluster != "" || plan.ToCluster != "" {
		from, to = orDash(plan.FromCluster)+"/"+from, orDash(plan.ToCluster)+"/"+to
	}
	fmt.Fprintf(w, "%s %s (%s) from %s to %s: %s:%s (target had %s)\n", verb, plan.Version, plan.Digest,
		from, to, plan.Repo, plan.Tag, orDash(plan.TargetVersion))
	if plan.Soak != "" {
		fmt.Fprintf(w, "soak: %s\n", plan.Soak)
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// splitKey parses "namespace/name", or a name in defaultNamespace.
func splitKey(s, defaultNamespace string) (types.NamespacedName, error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = defaultNamespace, s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q: want namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
