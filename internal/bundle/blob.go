package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// through blob.OpenBucket
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob" // gs:// through blob.OpenBucket
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
)

// defaultS3Region signs requests when nothing names a region; S3-compatible stores accept it.
const defaultS3Region = "us-east-1"

// fetchObjects downloads every object under loc's prefix into the stage.
func fetchObjects(ctx context.Context, loc Location, s3opts S3Options, s *stage) error {
	bucket, err := openBucket(ctx, loc, s3opts)
	if err != nil {
		return describe(err)
	}
	defer func() { _ = bucket.Close() }()

	found := false
	iter := bucket.List(&blob.ListOptions{Prefix: loc.Prefix})
	for {
		obj, err := iter.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return describe(err)
		}
		if strings.HasSuffix(obj.Key, "/") { // a "directory" marker that some tools create
			continue
		}
		found = true
		if err := downloadObject(ctx, bucket, obj.Key, strings.TrimPrefix(obj.Key, loc.Prefix), s); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("no objects under the prefix %q of %s %q; check spec.artifact.uri and that the bundle was uploaded there",
			loc.Prefix, bucketNoun(loc.Scheme), loc.Bucket)
	}
	return nil
}

func downloadObject(ctx context.Context, bucket *blob.Bucket, key, rel string, s *stage) error {
	r, err := bucket.NewReader(ctx, key, nil)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", rel, describe(err))
	}
	defer func() { _ = r.Close() }()
	return s.writeFile(rel, r)
}

func bucketNoun(scheme string) string {
	switch scheme {
	case SchemeAzblob:
		return "container"
	case SchemeFile:
		return "directory"
	}
	return "bucket"
}

func openBucket(ctx context.Context, loc Location, s3opts S3Options) (*blob.Bucket, error) {
	switch loc.Scheme {
	case SchemeS3:
		return openS3Bucket(ctx, loc.Bucket, s3opts)
	case SchemeFile:
		return fileblob.OpenBucket(loc.Bucket, nil)
	default: // gs and azblob, configured by their environment variables
		return blob.OpenBucket(ctx, loc.Scheme+"://"+loc.Bucket)
	}
}

func openS3Bucket(ctx context.Context, bucket string, o S3Options) (*blob.Bucket, error) {
	var load []func(*config.LoadOptions) error
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultS3Region
	}
	if o.Endpoint != "" {
		if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != SchemeHTTP && u.Scheme != SchemeHTTPS) || u.Host == "" {
			return nil, fmt.Errorf("the S3 endpoint %q is not an http:// or https:// URL (--s3-endpoint, AWS_ENDPOINT_URL)", o.Endpoint)
		}
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.ForcePathStyle
		// Stores that send no checksum (most S3-compatible ones) would log a line per file.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	return s3blob.OpenBucket(ctx, client, bucket, nil)
}

// describe turns a store's error into its cause and what to do about it.
func describe(err error) error {
	status, cause := answer(err)
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || gcerrors.Code(err) == gcerrors.PermissionDenied:
		return fmt.Errorf("access denied (%s); check the credentials in spec.serving.storageSecretName", cause)
	case status == http.StatusNotFound || gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("not found (%s); check the bucket and the path in spec.artifact.uri", cause)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot reach the store (%s); check the network and the endpoint (for s3://: --s3-endpoint, AWS_ENDPOINT_URL)", dnsErr)
	case errors.As(err, &opErr):
		return fmt.Errorf("cannot reach the store (%s); check the network and the endpoint (for s3://: --s3-endpoint, AWS_ENDPOINT_URL)", opErr)
	}
	return err
}

// answer finds the store's answer in err, as its client reports it: the HTTP status (0 when
// the store did not answer) and a one-line cause.
func answer(err error) (status int, cause string) {
	var s3Err interface{ HTTPStatusCode() int }
	var gcsErr *googleapi.Error
	var azErr *azcore.ResponseError
	switch {
	case errors.As(err, &s3Err) && s3Err.HTTPStatusCode() != 0:
		if s3API, ok := errors.AsType[smithy.APIError](err); ok {
			return s3Err.HTTPStatusCode(), s3API.ErrorCode() + ": " + s3API.ErrorMessage()
		}
		return s3Err.HTTPStatusCode(), fmt.Sprintf("HTTP %d", s3Err.HTTPStatusCode())
	case errors.As(err, &gcsErr):
		msg := gcsErr.Message
		if msg == "" {
			msg = strings.TrimSpace(gcsErr.Body)
		}
		return gcsErr.Code, fmt.Sprintf("HTTP %d: %s", gcsErr.Code, msg)
	case errors.As(err, &azErr):
		return azErr.StatusCode, fmt.Sprintf("HTTP %d %s", azErr.StatusCode, azErr.ErrorCode)
	}
	return 0, err.Error()
}
