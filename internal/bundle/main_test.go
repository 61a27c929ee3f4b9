package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The one identity of the test S3 server.
const (
	testAccessKey = "podium-test-key"
	testSecretKey = "podium-test-secret"
)

// seaweed is the S3-compatible server that the s3:// tests run against, started once by TestMain
// when PODIUM_SEAWEEDFS names the weed binary (make test sets it); nil otherwise.
var seaweed *seaweedFS

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// The AWS SDK must find the credentials that each test sets, and nothing else: no shared
	// config of the machine, and no instance metadata service, which is not on this machine.
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		_ = os.Setenv(k, v)
	}
	if bin := os.Getenv("PODIUM_SEAWEEDFS"); bin != "" {
		s, err := startSeaweedFS(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.stop()
		seaweed = s
	}
	return m.Run()
}

// needSeaweedFS skips a test that needs the S3 server when there is none.
func needSeaweedFS(t *testing.T) *seaweedFS {
	t.Helper()
	if seaweed == nil {
		t.Skip("PODIUM_SEAWEEDFS is not set: run `make test-unit` (or set it to the path printed by hack/seaweedfs.sh) to run the S3 tests")
	}
	return seaweed
}

// seaweedFS is a `weed server` with its master, volume server, filer and S3 gateway in one
// process, on loopback ports, keeping its data in a temporary directory. It runs under a
// supervisor shell that removes what weed wrote however the tests end.
type seaweedFS struct {
	endpoint string
	dir      string
	cmd      *exec.Cmd // the supervisor
	exited   chan struct{}
	client   *s3.Client
}

// supervisor runs weed ("$@" after the data directory $1) and, however it ends, kills weed and
// removes the data directory and the gRPC sockets that weed puts in /tmp whatever its flags say
// ($SOCKETS). It ends when weed exits, or on SIGTERM: from stop, or from the kernel when the
// test binary dies without running its defers (a panic, a timeout), as Pdeathsig asks. A second
// SIGTERM, which the kernel may send as well, must not cut the clean-up short.
const supervisor = `
data=$1; shift
weed=
trap 'trap "" TERM; [ -n "$weed" ] && kill -9 $weed 2>/dev/null; wait; rm -rf "$data" $SOCKETS' EXIT
trap 'exit 0' TERM
"$@" &
weed=$!
wait $weed
`

// startSeaweedFS starts weed and waits until it stores objects. On failure it stops what it
// started.
func startSeaweedFS(bin string) (_ *seaweedFS, err error) {
	dir, err := os.MkdirTemp("", "podium-seaweedfs-")
	if err != nil {
		return nil, err
	}
	s := &seaweedFS{dir: dir, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()

	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	port := func(i int) string { return strconv.Itoa(ports[i]) }
	identities := fmt.Sprintf(`{"identities":[{"name":"podium","credentials":[{"accessKey":%q,"secretKey":%q}],`+
		`"actions":["Admin","Read","List","Tagging","Write"]}]}`, testAccessKey, testSecretKey)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(identities), 0o600); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	// The log is read through this handle when weed fails to start: by then the supervisor may
	// have removed its name.
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Close() }()

	var sockets []string
	for i, name := range map[int]string{1: "master", 3: "volume", 5: "filer", 7: "s3"} {
		sockets = append(sockets, fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, ports[i]))
	}
	s.cmd = exec.Command("bash", "-c", supervisor, "seaweedfs-supervisor", dir, bin, "server",
		"-dir="+filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+port(0), "-master.port.grpc="+port(1), "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-volume.port="+port(2), "-volume.port.grpc="+port(3), "-volume.max=8", "-volume.preStopSeconds=0",
		"-filer", "-filer.port="+port(4), "-filer.port.grpc="+port(5), "-filer.localSocket="+filepath.Join(dir, "filer.sock"),
		"-s3", "-s3.port="+port(6), "-s3.port.grpc="+port(7), "-s3.localSocket="+filepath.Join(dir, "s3.sock"),
		"-s3.config="+filepath.Join(dir, "s3.json"), "-s3.iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0")
	s.cmd.Env = append(os.Environ(), "SOCKETS="+strings.Join(sockets, " "))
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	s.endpoint = "http://127.0.0.1:" + port(6)
	s.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		DisableLogOutputChecksumValidationSkipped: true,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
	})
	if err := s.waitReady(time.Minute); err != nil {
		_, _ = log.Seek(0, io.SeekStart)
		logText, _ := io.ReadAll(log)
		return nil, fmt.Errorf("SeaweedFS (%s, PODIUM_SEAWEEDFS) did not start: %w\n%s", bin, err, tail(logText, 40))
	}
	return s, nil
}

// waitReady polls until weed stores an object in testBucket, exits, or the timeout passes.
func (s *seaweedFS) waitReady(timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = s.tryBucket(); lastErr == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("weed exited (%v)", s.cmd.ProcessState)
		case <-deadline:
			return fmt.Errorf("no object could be stored within %s: %w", timeout, lastErr)
		case <-tick.C:
		}
	}
}

// tryBucket creates testBucket, if need be, and stores an object in it: the volume servers take
// a while longer than the S3 gateway to accept data.
func (s *seaweedFS) tryBucket() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(testBucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String("ready"), Body: strings.NewReader("ready"),
	}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	return err
}

// stop has the supervisor kill weed and remove everything it wrote, and waits for it.
func (s *seaweedFS) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.exited
	}
	_ = os.RemoveAll(s.dir) // for when the supervisor never started
}

// testBucket is the one bucket of the S3 server; each test keeps to a prefix of its own.
const testBucket = "bundles"

// prefix is the test's own prefix in testBucket.
func (s *seaweedFS) prefix(t *testing.T) string {
	return strings.ReplaceAll(t.Name(), "/", "_") + "/"
}

// upload puts the files, named by their paths in the bundle, into testBucket under prefix.
func (s *seaweedFS) upload(t *testing.T, prefix string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		_, err := s.client.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(testBucket),
			Key:    aws.String(prefix + rel),
			Body:   bytes.NewReader([]byte(content)),
		})
		if err != nil {
			t.Fatalf("uploading %s: %v", prefix+rel, err)
		}
	}
}

// freePorts finds n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// closedPort is a loopback port where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

func tail(b []byte, lines int) string {
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}
