package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podium-dev/podium/internal/bundle"
)

// terminationLogPath is where the kubelet reads a container's termination message from.
var terminationLogPath = "/dev/termination-log"

// fetchOptions are the flags of `manager fetch`.
type fetchOptions struct {
	uri      string
	dest     string
	digest   string
	verify   string
	s3       bundle.S3Options
	maxSize  string
	maxFiles int
	timeout  time.Duration
	network  bundle.NetworkOptions
	insecure string
}

// defaultFetchTimeout bounds a whole fetch: enough for a few GiB from a store in the cluster's
// region, short enough that a fetch that cannot finish fails while someone still looks.
const defaultFetchTimeout = 10 * time.Minute

// The environment variables with the credentials of http(s) fetches, from the Secret named by
// spec.serving.storageSecretName. They are never printed.
const (
	envHTTPBearerToken = "PODIUM_HTTP_BEARER_TOKEN"
	envHTTPUsername    = "PODIUM_HTTP_USERNAME"
	envHTTPPassword    = "PODIUM_HTTP_PASSWORD"
	// envDockerConfig holds a docker config JSON with the credentials of oci:// fetches;
	// envDockerConfigJSON is the key of a kubernetes.io/dockerconfigjson Secret, which reaches
	// the fetcher as a variable where the cluster accepts that name.
	envDockerConfig     = "PODIUM_DOCKER_CONFIG"
	envDockerConfigJSON = ".dockerconfigjson"
)

// bindFlags binds the flags. The S3 flags default to the environment variables that a Deployment
// sets: AWS_ENDPOINT_URL, AWS_REGION and PODIUM_S3_FORCE_PATH_STYLE.
func (o *fetchOptions) bindFlags(fs *flag.FlagSet) error {
	pathStyle := false
	if v := os.Getenv("PODIUM_S3_FORCE_PATH_STYLE"); v != "" {
		var err error
		if pathStyle, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("PODIUM_S3_FORCE_PATH_STYLE=%q is neither true nor false", v)
		}
	}
	fs.StringVar(&o.uri, "uri", "", "URI of the bundle (spec.artifact.uri): s3://, gs://, azblob://, file://, "+
		"an http(s):// .tar, .tar.gz or .tgz archive, or an oci:// artifact pinned by digest.")
	fs.StringVar(&o.dest, "dest", "",
		"Directory to put the bundle in, replaced whole; a path inside a writable volume, not its mount point.")
	fs.StringVar(&o.digest, "digest", "", "Digest the bundle must have (spec.artifact.digest); empty skips the check.")
	fs.StringVar(&o.verify, "verify", "", "Verify the bundle already in this directory (a mounted pvc:// bundle) "+
		"instead of fetching; without --digest, print its digest.")
	fs.StringVar(&o.s3.Endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL"),
		"URL of an S3-compatible store; empty means AWS S3. Default: $AWS_ENDPOINT_URL.")
	fs.StringVar(&o.s3.Region, "s3-region", os.Getenv("AWS_REGION"),
		"Region of the S3 bucket. Default: $AWS_REGION, else us-east-1.")
	fs.BoolVar(&o.s3.ForcePathStyle, "s3-force-path-style", pathStyle,
		"Address S3 buckets as ENDPOINT/BUCKET, as most S3-compatible stores need. Default: $PODIUM_S3_FORCE_PATH_STYLE.")
	fs.StringVar(&o.maxSize, "max-size", resource.NewQuantity(bundle.DefaultMaxBytes, resource.BinarySI).String(),
		"Largest bundle to download, such as 500Mi or 20Gi.")
	fs.IntVar(&o.maxFiles, "max-files", bundle.DefaultMaxFiles,
		"Most files a bundle may hold; for an archive, most entries of any kind (directories and links count).")
	fs.DurationVar(&o.timeout, "timeout", defaultFetchTimeout, "Longest the whole fetch may take.")
	fs.DurationVar(&o.network.ConnectTimeout, "connect-timeout", bundle.DefaultConnectTimeout,
		"Longest wait to open a connection, name resolution included.")
	fs.DurationVar(&o.network.ResponseTimeout, "response-timeout", bundle.DefaultResponseTimeout,
		"Longest wait for a TLS handshake, a response's headers, or more of a body: a stalled server fails after it.")
	fs.StringVar(&o.insecure, "insecure-registry", "",
		"The one OCI registry (HOST[:PORT], as in the URI) to reach over plain HTTP instead of HTTPS.")
	fs.IntVar(&o.network.Attempts, "attempts", bundle.DefaultAttempts,
		"Attempts at a request that fails transiently (connection refused or reset, timeouts, HTTP 408, 429, 5xx), "+
			"the first included; the waits between them double from 1s.")
	return nil
}

// fetchMain runs `manager fetch ARGS` and returns the exit code.
func fetchMain(args []string, stdout, stderr io.Writer) int {
	o := &fetchOptions{}
	fs := flag.NewFlagSet("manager fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "Usage: manager fetch --uri URI --dest DIR [--digest DIGEST] [flags]\n"+
			"       manager fetch --verify DIR [--digest DIGEST]\n"+
			"Downloads the model bundle at URI into DIR, or checks the bundle in DIR, and verifies its digest.\n")
		fs.PrintDefaults()
	}
	if err := o.bindFlags(fs); err != nil {
		return fail(stderr, err)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		writeTerminationMessage(err.Error()) // the flag package has printed it, with the usage
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := o.run(ctx, stdout); err != nil {
		return fail(stderr, err)
	}
	return 0
}

// fail reports err as one line on stderr and in the termination log, for the kubelet to show as
// the init container's termination message, and returns the exit code 1.
func fail(stderr io.Writer, err error) int {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	_, _ = fmt.Fprintln(stderr, msg)
	writeTerminationMessage(msg)
	return 1
}

// run fetches, or verifies, the bundle the options name.
func (o *fetchOptions) run(ctx context.Context, stdout io.Writer) error {
	if o.verify != "" {
		if o.uri != "" || o.dest != "" {
			return errors.New("--verify checks a bundle already in place: give it without --uri and --dest")
		}
		return o.runVerify(stdout)
	}
	if o.uri == "" || o.dest == "" {
		return errors.New("give --uri and --dest to fetch a bundle, or --verify DIR to check a mounted one")
	}
	maxSize, err := resource.ParseQuantity(o.maxSize)
	if err != nil || maxSize.Sign() <= 0 {
		return fmt.Errorf("--max-size %q is not a size such as 500Mi or 20Gi", o.maxSize)
	}
	if o.maxFiles <= 0 {
		return fmt.Errorf("--max-files %d is not a positive number", o.maxFiles)
	}
	for name, d := range map[string]time.Duration{
		"--timeout":          o.timeout,
		"--connect-timeout":  o.network.ConnectTimeout,
		"--response-timeout": o.network.ResponseTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("%s %s is not a positive duration", name, d)
		}
	}
	if o.network.Attempts <= 0 {
		return fmt.Errorf("--attempts %d is not a positive number", o.network.Attempts)
	}
	creds, err := httpCredentials()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout,
		fmt.Errorf("the fetch took longer than --timeout %s; raise it if the bundle is that large or the store that slow",
			o.timeout))
	defer cancel()
	opts := bundle.Options{
		Digest: o.digest, S3: o.s3, MaxBytes: maxSize.Value(), MaxFiles: o.maxFiles, HTTP: creds, Network: o.network,
		OCI: bundle.OCIOptions{DockerConfig: dockerConfig(), InsecureRegistry: o.insecure},
	}
	if err := bundle.Fetch(ctx, o.uri, o.dest, opts); err != nil {
		return err
	}
	uri := bundle.Redact(o.uri)
	if o.digest != "" {
		_, _ = fmt.Fprintf(stdout, "fetched %s into %s, digest %s verified\n", uri, o.dest, o.digest)
	} else {
		_, _ = fmt.Fprintf(stdout, "fetched %s into %s\n", uri, o.dest)
	}
	return nil
}

// httpCredentials reads the credentials of http(s) fetches from the environment.
func httpCredentials() (bundle.HTTPCredentials, error) {
	c := bundle.HTTPCredentials{
		BearerToken: os.Getenv(envHTTPBearerToken),
		Username:    os.Getenv(envHTTPUsername),
		Password:    os.Getenv(envHTTPPassword),
	}
	switch {
	case c.BearerToken != "" && (c.Username != "" || c.Password != ""):
		return c, fmt.Errorf("set either %s or %s and %s, not both", envHTTPBearerToken, envHTTPUsername, envHTTPPassword)
	case (c.Username == "") != (c.Password == ""):
		return c, fmt.Errorf("set both %s and %s, or neither", envHTTPUsername, envHTTPPassword)
	}
	return c, nil
}

// dockerConfig reads the docker config JSON of oci:// fetches from the environment:
// PODIUM_DOCKER_CONFIG, else .dockerconfigjson.
func dockerConfig() []byte {
	if v := os.Getenv(envDockerConfig); v != "" {
		return []byte(v)
	}
	return []byte(os.Getenv(envDockerConfigJSON))
}

func (o *fetchOptions) runVerify(stdout io.Writer) error {
	if o.digest == "" {
		d, err := bundle.Digest(o.verify)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "bundle %s has digest %s\n", o.verify, d)
		return nil
	}
	if err := bundle.Verify(o.verify, o.digest); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, "bundle %s has digest %s, as expected\n", o.verify, o.digest)
	return nil
}

// writeTerminationMessage writes msg to the termination log when the kubelet provides one (it
// exists and is writable); elsewhere it does nothing.
func writeTerminationMessage(msg string) {
	f, err := os.OpenFile(terminationLogPath, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	_, _ = io.WriteString(f, msg+"\n")
	_ = f.Close()
}
