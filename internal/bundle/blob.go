package bundle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"gocloud.dev/gcp"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// defaultS3Region signs requests when nothing names a region; S3-compatible stores accept it.
const defaultS3Region = "us-east-1"

// fetchObjects downloads every object under loc's prefix into the stage.
func fetchObjects(ctx context.Context, loc Location, opts Options, s *stage) error {
	n := opts.Network
	bucket, closeBucket, err := openBucket(ctx, loc, opts)
	if err != nil {
		return describe(err)
	}
	defer closeBucket()

	found := false
	iter := bucket.List(&blob.ListOptions{Prefix: loc.Prefix})
	for {
		obj, err := nextObject(ctx, iter, n)
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
		if err := downloadObject(ctx, bucket, obj.Key, strings.TrimPrefix(obj.Key, loc.Prefix), n, s); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("no objects under the prefix %q of %s %q; check spec.artifact.uri and that the bundle was uploaded there",
			loc.Prefix, bucketNoun(loc.Scheme), loc.Bucket)
	}
	return nil
}

// requestBudget bounds one request with all its attempts, as the stores' clients make them:
// a safety net over their own timeouts and retries.
func (n NetworkOptions) requestBudget() time.Duration {
	return time.Duration(n.Attempts) * (n.ConnectTimeout + n.ResponseTimeout + n.maxBackoff())
}

// nextObject lists the next object, within the request budget.
func nextObject(ctx context.Context, iter *blob.ListIterator, n NetworkOptions) (*blob.ListObject, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, n.requestBudget(),
		fmt.Errorf("%w: listing the objects took longer than %s", errStalled, n.requestBudget()))
	defer cancel()
	obj, err := iter.Next(ctx)
	if err != nil && err != io.EOF && ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return obj, err
}

// downloadObject downloads one object into the stage, again when the download breaks off: the
// stores' clients retry the request, not the reading of its body.
func downloadObject(ctx context.Context, bucket *blob.Bucket, key, rel string, n NetworkOptions, s *stage) error {
	return withRetries(ctx, n, func(ctx context.Context) error {
		ctx, watch, stop := watchBody(ctx, n.requestBudget(), n.ResponseTimeout)
		defer stop()
		r, err := bucket.NewReader(ctx, key, nil)
		if err != nil {
			if cause := context.Cause(ctx); ctx.Err() != nil {
				err = cause
			}
			// The store's client has made its attempts already.
			return &permanentError{fmt.Errorf("downloading %s: %w", rel, describe(err))}
		}
		defer func() { _ = r.Close() }()
		return s.writeFile(rel, watch(r))
	})
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

// openBucket opens the bucket of loc with a client that has the timeouts and bounded retries
// of opts.Network. The returned function closes it.
func openBucket(ctx context.Context, loc Location, opts Options) (*blob.Bucket, func(), error) {
	var b *blob.Bucket
	var err error
	closeClient := func() {}
	switch loc.Scheme {
	case SchemeS3:
		b, err = openS3Bucket(ctx, loc.Bucket, opts.S3, opts.Network)
	case SchemeGS:
		b, closeClient, err = openGCSBucket(ctx, loc.Bucket, opts.Network)
	case SchemeAzblob:
		b, err = openAzureBucket(ctx, loc.Bucket, opts.Network)
	case SchemeFile:
		b, err = fileblob.OpenBucket(loc.Bucket, nil)
	default:
		err = fmt.Errorf("%s:// names no bucket", loc.Scheme)
	}
	if err != nil {
		closeClient()
		return nil, nil, err
	}
	return b, func() { _ = b.Close(); closeClient() }, nil
}

func openS3Bucket(ctx context.Context, bucket string, o S3Options, n NetworkOptions) (*blob.Bucket, error) {
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
			return nil, fmt.Errorf("the S3 endpoint %q is not an http:// or https:// URL (--s3-endpoint, AWS_ENDPOINT_URL)", Redact(o.Endpoint))
		}
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.ForcePathStyle
		// Stores that send no checksum (most S3-compatible ones) would log a line per file.
		so.DisableLogOutputChecksumValidationSkipped = true
		so.HTTPClient = &http.Client{Transport: n.transport()}
		so.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = n.Attempts
			ro.MaxBackoff = n.maxBackoff()
			ro.Backoff = retry.NewExponentialJitterBackoff(n.maxBackoff())
		})
	})
	return s3blob.OpenBucket(ctx, client, bucket, nil)
}

// openGCSBucket opens a Google Cloud Storage bucket with Application Default Credentials, or
// none when STORAGE_EMULATOR_HOST names an emulator. The returned function closes the client.
func openGCSBucket(ctx context.Context, bucket string, n NetworkOptions) (*blob.Bucket, func(), error) {
	hc := &http.Client{Transport: n.transport()}
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		creds, err := gcp.DefaultCredentials(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("no Google credentials (%w); set GOOGLE_APPLICATION_CREDENTIALS through "+
				"spec.serving.storageSecretName, or use workload identity", err)
		}
		authed, err := gcp.NewHTTPClient(n.transport(), gcp.CredentialsTokenSource(creds))
		if err != nil {
			return nil, nil, err
		}
		hc = &authed.Client
	}
	client, err := storage.NewClient(ctx, option.WithHTTPClient(hc))
	if err != nil {
		return nil, nil, err
	}
	// Left to itself, the client retries until the context ends.
	client.SetRetry(storage.WithMaxAttempts(n.Attempts),
		storage.WithBackoff(gax.Backoff{Initial: n.Backoff, Max: n.maxBackoff(), Multiplier: 2}))
	closeClient := func() { _ = client.Close() }
	b, err := gcsblob.OpenBucket(ctx, nil, bucket, &gcsblob.Options{Client: client})
	if err != nil {
		closeClient()
		return nil, nil, err
	}
	return b, closeClient, nil
}

// openAzureBucket opens an Azure Blob Storage container, with the credentials that gocloud's
// azblob:// URLs take from the environment: AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, or
// AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING, else the default Azure
// credential (workload identity).
func openAzureBucket(ctx context.Context, name string, n NetworkOptions) (*blob.Bucket, error) {
	svcURL, err := azureblob.NewServiceURL(azureblob.NewDefaultServiceURLOptions())
	if err != nil {
		return nil, err
	}
	containerURL, err := url.JoinPath(string(svcURL), name)
	if err != nil {
		return nil, err
	}
	retries := int32(n.Attempts - 1)
	if retries == 0 {
		retries = -1 // 0 would mean the client's default
	}
	o := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: retries, RetryDelay: n.Backoff, MaxRetryDelay: n.maxBackoff()},
		Transport: &http.Client{Transport: n.transport()},
	}}
	account, key := os.Getenv("AZURE_STORAGE_ACCOUNT"), os.Getenv("AZURE_STORAGE_KEY")
	connection := cmp.Or(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), os.Getenv("AZURE_STORAGEBLOB_CONNECTIONSTRING"))
	var client *container.Client
	switch {
	case account != "" && key != "":
		cred, err := container.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("AZURE_STORAGE_KEY: %w", err)
		}
		client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, o)
		if err != nil {
			return nil, err
		}
	case os.Getenv("AZURE_STORAGE_SAS_TOKEN") != "": // in the service URL
		client, err = container.NewClientWithNoCredential(containerURL, o)
	case connection != "":
		client, err = container.NewClientFromConnectionString(connection, name, o)
	default:
		cred, credErr := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: o.ClientOptions})
		if credErr != nil {
			return nil, fmt.Errorf("no Azure credentials (%w); set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY "+
				"through spec.serving.storageSecretName, or use workload identity", credErr)
		}
		client, err = container.NewClient(containerURL, cred, o)
	}
	if err != nil {
		return nil, err
	}
	return azureblob.OpenBucket(ctx, client, nil)
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
	case status != 0:
		// The client has retried what was worth it; its message spans lines and repeats the request.
		if !strings.HasPrefix(cause, "HTTP ") {
			cause = fmt.Sprintf("HTTP %d %s", status, cause)
		}
		return fmt.Errorf("the store failed (%s); check its health, and try again later", strings.TrimSuffix(strings.TrimSpace(cause), ":"))
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the request
			cause = urlErr.Err.Error()
		}
		return fmt.Errorf("the store did not answer in time (%s); check the store's health and the network, or raise --response-timeout", cause)
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
