package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Options configure the S3 backend.
type S3Options struct {
	// Path is "bucket/prefix" or "s3://bucket/prefix"; the prefix may be empty.
	Path string
	// Region of the bucket; empty uses the SDK default chain (AWS_REGION, profile).
	Region string
	// Endpoint overrides the S3 endpoint (an S3-compatible server, a VPC
	// endpoint), e.g. "http://127.0.0.1:9000".
	Endpoint string
	// PathStyle addresses the bucket in the URL path rather than the host
	// name, which most S3-compatible servers need.
	PathStyle bool
	// PageSize bounds each listing page (S3's maximum, 1000, when 0).
	PageSize int32
}

// S3 is a Backend in an S3 bucket under a key prefix. Credentials come from
// the AWS SDK's default chain (environment, profile, IRSA, instance role).
// On a versioned bucket, Put returns the new version id (recorded in the
// manifest so Import reads exactly the exported versions) and Clear removes
// every version and delete marker, not just the latest.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	pageSize int32
}

// maxDeleteBatch is the most keys one DeleteObjects request accepts.
const maxDeleteBatch = 1000

// NewS3 connects to the bucket named by opts.Path.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	bucket, prefix, err := parseS3Path(opts.Path)
	if err != nil {
		return nil, err
	}
	var loaders []func(*awsconfig.LoadOptions) error
	if opts.Region != "" {
		loaders = append(loaders, awsconfig.WithRegion(opts.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers ignore it; AWS needs one to sign
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.PathStyle
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	size := opts.PageSize
	if size <= 0 || size > 1000 {
		size = 1000
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, pageSize: size}, nil
}

// parseS3Path splits "s3://bucket/prefix" or "bucket/prefix".
func parseS3Path(p string) (bucket, prefix string, err error) {
	p = strings.TrimPrefix(strings.TrimSpace(p), "s3://")
	bucket, prefix, _ = strings.Cut(p, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("S3 state path %q: want bucket/prefix or s3://bucket/prefix", p)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// String implements Backend.
func (b *S3) String() string { return "s3://" + b.bucket + "/" + strings.TrimSuffix(b.prefix, "/") }

// Put implements Backend.
func (b *S3) Put(ctx context.Context, key string, data []byte) (string, error) {
	out, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(b.prefix + key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		return "", fmt.Errorf("writing %s%s: %w", b, key, err)
	}
	return aws.ToString(out.VersionId), nil
}

// Get implements Backend.
func (b *S3) Get(ctx context.Context, key, version string) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.prefix + key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, b, key)
		}
		return nil, fmt.Errorf("reading %s/%s: %w", b, key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var api smithy.APIError
	return errors.As(err, &nsk) || (errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchVersion"))
}

// List implements Backend, following continuation tokens past S3's
// 1,000-keys-per-page limit.
func (b *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket), Prefix: aws.String(b.prefix + prefix), MaxKeys: aws.Int32(b.pageSize),
	})
	var out []ObjectInfo
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", b, err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), b.prefix), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// Delete implements Backend. On a versioned bucket this adds delete markers
// (older versions stay recoverable until Clear or a lifecycle rule).
func (b *S3) Delete(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(b.prefix + k)})
	}
	return b.deleteBatches(ctx, ids)
}

// Clear implements Backend: the current objects under the prefix are
// deleted, then, on a bucket that has ever had versioning on, every
// remaining version and delete marker, so a versioned bucket is really
// emptied.
func (b *S3) Clear(ctx context.Context) error {
	objects, err := b.List(ctx, "")
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(objects))
	for _, o := range objects {
		keys = append(keys, o.Key)
	}
	if err := b.Delete(ctx, keys); err != nil {
		return err
	}
	versioned, err := b.versioned(ctx)
	if err != nil || !versioned {
		return err
	}
	return b.clearVersions(ctx)
}

// versioned reports whether the bucket keeps (or once kept) versions.
func (b *S3) versioned(ctx context.Context) (bool, error) {
	out, err := b.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b.bucket)})
	if err != nil {
		return false, fmt.Errorf("reading the versioning of bucket %s: %w", b.bucket, err)
	}
	return out.Status != "", nil
}

// clearVersions deletes the first page of versions until none is left.
// Each round lists from the start rather than following the markers:
// what was listed is gone by the next round, so the first page always
// holds what remains, and servers whose version markers are unreliable
// are emptied all the same. A round that removes nothing stops the loop.
func (b *S3) clearVersions(ctx context.Context) error {
	for {
		ids, err := b.firstVersions(ctx)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := b.deleteBatches(ctx, ids); err != nil {
			return err
		}
		left, err := b.firstVersions(ctx)
		if err != nil {
			return err
		}
		if len(left) > 0 && aws.ToString(left[0].Key) == aws.ToString(ids[0].Key) &&
			aws.ToString(left[0].VersionId) == aws.ToString(ids[0].VersionId) {
			return fmt.Errorf("clearing %s: version %s of %s is not removed", b, aws.ToString(ids[0].VersionId), aws.ToString(ids[0].Key))
		}
	}
}

// firstVersions lists one page of object versions and delete markers
// under the prefix.
func (b *S3) firstVersions(ctx context.Context) ([]types.ObjectIdentifier, error) {
	page, err := b.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{
		Bucket: aws.String(b.bucket), Prefix: aws.String(b.prefix), MaxKeys: aws.Int32(b.pageSize),
	})
	if err != nil {
		return nil, fmt.Errorf("listing versions in %s: %w", b, err)
	}
	var ids []types.ObjectIdentifier
	for _, v := range page.Versions {
		ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
	}
	for _, m := range page.DeleteMarkers {
		ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
	}
	return ids, nil
}

func (b *S3) deleteBatches(ctx context.Context, ids []types.ObjectIdentifier) error {
	for start := 0; start < len(ids); start += maxDeleteBatch {
		batch := ids[start:min(start+maxDeleteBatch, len(ids))]
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(b.bucket), Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("deleting from %s: %w", b, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("deleting %s from %s: %s: %s (and %d more)", aws.ToString(e.Key), b,
				aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return nil
}
