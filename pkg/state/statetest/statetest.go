// Package statetest starts a real S3-compatible server for the state
// backend's tests: gofakes3, an in-process S3 implementation speaking the
// S3 REST protocol (listings with continuation tokens, object versioning,
// multi-object delete), served on 127.0.0.1.
package statetest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is a running S3-compatible server.
type S3 struct {
	// Endpoint is "http://127.0.0.1:<port>", used with path-style addressing.
	Endpoint string
	// Client is an admin client for arranging and asserting.
	Client *s3.Client
}

// StartS3 serves an S3 server for the test and sets the AWS environment
// (static credentials, a region, no instance metadata) so the product's
// default credential chain finds credentials without any network.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	faker := gofakes3.New(s3mem.New(), gofakes3.WithTimeSkewLimit(0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	endpoint := "http://" + ln.Addr().String()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test-secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle, o.BaseEndpoint = true, aws.String(endpoint)
	})
	return &S3{Endpoint: endpoint, Client: client}
}

// Bucket creates a bucket, versioned when asked.
func (s *S3) Bucket(t testing.TB, name string, versioned bool) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	if !versioned {
		return
	}
	_, err := s.Client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	if err != nil {
		t.Fatalf("enabling versioning on %s: %v", name, err)
	}
}

// Versions counts object versions and delete markers under prefix.
func (s *S3) Versions(t testing.TB, bucket, prefix string) int {
	t.Helper()
	pages := s3.NewListObjectVersionsPaginator(s.Client, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Versions) + len(page.DeleteMarkers)
	}
	return n
}
