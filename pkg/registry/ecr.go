package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"k8s.io/utils/clock"
)

// ECROptions configure the ECR implementation.
type ECROptions struct {
	// Endpoint overrides the ECR API endpoint (a VPC endpoint, or a test
	// server); "" uses the SDK's endpoint for the repository's region.
	Endpoint string
	// HTTPClient carries API and registry-protocol requests (the controller
	// passes its per-host guard); nil uses the SDK's default.
	HTTPClient *http.Client
	// Transport carries registry-protocol requests (tag listing); nil means
	// go-containerregistry's default.
	Transport http.RoundTripper
	// LoadConfig loads AWS configuration for a region; nil means the SDK's
	// default chain (environment, shared config, IRSA web identity,
	// instance role).
	LoadConfig func(ctx context.Context, region string) (aws.Config, error)
	// Clock is the clock for token expiry; nil means the real clock.
	Clock clock.Clock
	// TokenRefreshAhead renews a registry auth token this long before it
	// expires (default 1 h of its 12 h), so a request never carries a token
	// about to lapse.
	TokenRefreshAhead time.Duration
}

// ECR implements Registry with the ECR API: one DescribeImages answers a
// tag's digest and all its tags, retag is BatchGetImage → PutImage, and
// BatchDeleteImage removes a single tag.
type ECR struct {
	opts ECROptions

	mu      sync.Mutex
	clients map[string]*ecr.Client // per region

	tokenMu sync.Mutex
	tokens  map[string]ecrToken // per account and region
}

// NewECR returns the ECR implementation.
func NewECR(opts ECROptions) *ECR {
	if opts.LoadConfig == nil {
		opts.LoadConfig = func(ctx context.Context, region string) (aws.Config, error) {
			return config.LoadDefaultConfig(ctx, config.WithRegion(region))
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.TokenRefreshAhead <= 0 {
		opts.TokenRefreshAhead = time.Hour
	}
	return &ECR{opts: opts, clients: map[string]*ecr.Client{}, tokens: map[string]ecrToken{}}
}

// client returns the API client of a region, made once.
func (e *ECR) client(ctx context.Context, region string) (*ecr.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[region]; ok {
		return c, nil
	}
	cfg, err := e.opts.LoadConfig(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for %s: %w", region, err)
	}
	c := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if e.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(e.opts.Endpoint)
		}
		if e.opts.HTTPClient != nil {
			o.HTTPClient = e.opts.HTTPClient
		}
	})
	e.clients[region] = c
	return c, nil
}

func (e *ECR) locate(ctx context.Context, repo string) (ECRLocation, *ecr.Client, error) {
	loc, err := ParseECR(repo)
	if err != nil {
		return ECRLocation{}, nil, err
	}
	c, err := e.client(ctx, loc.Region)
	return loc, c, err
}

// Resolve implements Registry with one DescribeImages call.
func (e *ECR) Resolve(ctx context.Context, req ResolveRequest) (Image, error) {
	img, err := e.describe(ctx, req.Name, ecrtypes.ImageIdentifier{ImageTag: aws.String(req.Tag)})
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", req.Name, req.Tag, err)
	}
	img.Version = PickVersion(req.Tag, img.Tags, req.VersionSyntax)
	return img, nil
}

// TagsOf implements Registry: DescribeImages lists every tag of the image
// in the same call, where v2 needs a HEAD per tag.
func (e *ECR) TagsOf(ctx context.Context, repo Repo, tag string) (Image, error) {
	img, err := e.describe(ctx, repo.Name, ecrtypes.ImageIdentifier{ImageTag: aws.String(tag)})
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, tag, err)
	}
	return img, nil
}

func (e *ECR) describe(ctx context.Context, repo string, id ecrtypes.ImageIdentifier) (Image, error) {
	loc, c, err := e.locate(ctx, repo)
	if err != nil {
		return Image{}, err
	}
	out, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{
		RegistryId: aws.String(loc.Account), RepositoryName: aws.String(loc.Repository), ImageIds: []ecrtypes.ImageIdentifier{id},
	})
	if err != nil {
		return Image{}, explainECR(err)
	}
	if len(out.ImageDetails) == 0 {
		return Image{}, errors.New("image not found")
	}
	d := out.ImageDetails[0]
	tags := append([]string(nil), d.ImageTags...)
	sort.Strings(tags)
	return Image{Digest: aws.ToString(d.ImageDigest), MediaType: aws.ToString(d.ImageManifestMediaType), Tags: tags}, nil
}

// ListTags implements Registry over the registry protocol (tags/list, 1000 a
// page, ECR's maximum) with the cached authorization token: it returns only
// names, where DescribeImages would describe every image.
func (e *ECR) ListTags(ctx context.Context, repo Repo) ([]string, error) {
	loc, err := ParseECR(repo.Name)
	if err != nil {
		return nil, err
	}
	rt, r, err := e.registryTransport(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo.Name, err)
	}
	return listTags(ctx, rt, r, 1000, 100)
}

// AddTags implements Registry: BatchGetImage fetches the manifest and
// PutImage stores it under each tag; nothing is pulled.
func (e *ECR) AddTags(ctx context.Context, repo Repo, version string, tags []string) (Image, error) {
	loc, c, err := e.locate(ctx, repo.Name)
	if err != nil {
		return Image{}, err
	}
	img, manifest, err := e.manifest(ctx, c, loc, version)
	if err != nil {
		return Image{}, fmt.Errorf("%s:%s: %w", repo.Name, version, err)
	}
	for _, tag := range tags {
		_, err := c.PutImage(ctx, &ecr.PutImageInput{
			RegistryId: aws.String(loc.Account), RepositoryName: aws.String(loc.Repository), ImageTag: aws.String(tag),
			ImageManifest: aws.String(manifest), ImageManifestMediaType: aws.String(img.MediaType), ImageDigest: aws.String(img.Digest),
		})
		if err := putImageError(err); err != nil {
			return Image{}, fmt.Errorf("tagging %s:%s as %s: %w", repo.Name, version, tag, err)
		}
	}
	img.Version = version
	return img, nil
}

// putImageError: an image already carrying the tag is success; a tag held
// by another image in a repository with immutable tags is explained.
func putImageError(err error) error {
	var already *ecrtypes.ImageAlreadyExistsException
	var immutable *ecrtypes.ImageTagAlreadyExistsException
	switch {
	case err == nil, errors.As(err, &already):
		return nil
	case errors.As(err, &immutable):
		return fmt.Errorf("the repository has immutable tags and the tag is already on another image: %w", err)
	default:
		return explainECR(err)
	}
}

// manifestMediaTypes are the manifest kinds BatchGetImage may answer with.
var manifestMediaTypes = []string{
	"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
}

func (e *ECR) manifest(ctx context.Context, c *ecr.Client, loc ECRLocation, tag string) (Image, string, error) {
	out, err := c.BatchGetImage(ctx, &ecr.BatchGetImageInput{
		RegistryId: aws.String(loc.Account), RepositoryName: aws.String(loc.Repository),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String(tag)}}, AcceptedMediaTypes: manifestMediaTypes,
	})
	if err != nil {
		return Image{}, "", explainECR(err)
	}
	if len(out.Failures) > 0 {
		return Image{}, "", failureError(out.Failures[0])
	}
	if len(out.Images) == 0 {
		return Image{}, "", errors.New("image not found")
	}
	im := out.Images[0]
	return Image{Digest: aws.ToString(im.ImageId.ImageDigest), MediaType: aws.ToString(im.ImageManifestMediaType)}, aws.ToString(im.ImageManifest), nil
}

// RemoveTags implements Registry with BatchDeleteImage by tag: ECR deletes
// the image only when its last tag goes.
func (e *ECR) RemoveTags(ctx context.Context, repo Repo, tags []string) error {
	loc, c, err := e.locate(ctx, repo.Name)
	if err != nil {
		return err
	}
	ids := make([]ecrtypes.ImageIdentifier, len(tags))
	for i, tag := range tags {
		ids[i] = ecrtypes.ImageIdentifier{ImageTag: aws.String(tag)}
	}
	out, err := c.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{
		RegistryId: aws.String(loc.Account), RepositoryName: aws.String(loc.Repository), ImageIds: ids,
	})
	if err != nil {
		return fmt.Errorf("removing tags %s from %s: %w", strings.Join(tags, ","), repo.Name, explainECR(err))
	}
	var problems []string
	for _, f := range out.Failures {
		problems = append(problems, fmt.Sprintf("%s:%s: %v", repo.Name, aws.ToString(f.ImageId.ImageTag), failureError(f)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("removing tags: %s", strings.Join(problems, "; "))
	}
	return nil
}

func failureError(f ecrtypes.ImageFailure) error {
	return fmt.Errorf("%s: %s", f.FailureCode, aws.ToString(f.FailureReason))
}

// explainECR keeps the SDK's error and adds what a user needs to act on.
func explainECR(err error) error {
	var noRepo *ecrtypes.RepositoryNotFoundException
	var noImage *ecrtypes.ImageNotFoundException
	switch {
	case errors.As(err, &noRepo):
		return fmt.Errorf("repository not found: %w", err)
	case errors.As(err, &noImage):
		return fmt.Errorf("image not found: %w", err)
	default:
		return err
	}
}
