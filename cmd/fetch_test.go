package main

import (
	"bytes"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podium-dev/podium/internal/bundle"
)

// TestMain also lets the test binary run as the manager binary, for TestManagerDispatchesFetch.
func TestMain(m *testing.M) {
	if os.Getenv("PODIUM_TEST_RUN_MANAGER") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeBundle writes a small bundle and returns its directory and digest.
func writeBundle(t *testing.T) (dir, digest string) {
	t.Helper()
	dir = t.TempDir()
	for name, content := range map[string]string{"model.pkl": "model", "meta/metadata.pkl": "metadata"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := bundle.Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, digest
}

// fetchCommand runs `manager fetch ARGS` in-process, with a termination log of its own.
func fetchCommand(t *testing.T, args ...string) (code int, stdout, stderr, termination string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := terminationLogPath
	terminationLogPath = logPath
	t.Cleanup(func() { terminationLogPath = old })

	var out, errOut bytes.Buffer
	code = fetchMain(args, &out, &errOut)
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String(), string(logged)
}

func TestFetchCommandFetchesAndVerifies(t *testing.T) {
	src, digest := writeBundle(t)
	uri, dest := "file://"+src+"/", filepath.Join(t.TempDir(), "model")
	code, stdout, stderr, _ := fetchCommand(t, "--uri", uri, "--dest", dest, "--digest", digest)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if want := "fetched " + uri + " into " + dest + ", digest " + digest + " verified\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if got, err := bundle.Digest(dest); err != nil || got != digest {
		t.Errorf("dest has digest %s (%v), want %s", got, err, digest)
	}
}

func TestFetchCommandFailsWithOneLine(t *testing.T) {
	src, _ := writeBundle(t)
	other := "sha256:" + strings.Repeat("0", 64)
	uri := "file://" + src + "/"
	dest := filepath.Join(t.TempDir(), "model")
	code, stdout, stderr, termination := fetchCommand(t, "--uri", uri, "--dest", dest, "--digest", other)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "bundle "+uri+": digest ") ||
		!strings.Contains(stderr, "does not match spec.artifact.digest "+other) {
		t.Errorf("stderr = %q, want one line naming the URI and both digests", stderr)
	}
	if termination != stderr {
		t.Errorf("termination log = %q, want %q", termination, stderr)
	}
}

func TestFetchCommandAppliesTheLimits(t *testing.T) {
	src, _ := writeBundle(t) // 2 files, 13 bytes
	uri := "file://" + src + "/"
	for flagValue, want := range map[[2]string]string{
		{"--max-size", "12"}: "more than 12 bytes",
		{"--max-files", "1"}: "more than 1 files",
	} {
		dest := filepath.Join(t.TempDir(), "model")
		code, _, stderr, _ := fetchCommand(t, "--uri", uri, "--dest", dest, flagValue[0], flagValue[1])
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s %s: exit code %d, stderr %q; want 1 and %q", flagValue[0], flagValue[1], code, stderr, want)
		}
	}
}

func TestFetchCommandWritesNoTerminationLogWhereThereIsNone(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "termination-log")
	old := terminationLogPath
	terminationLogPath = missing
	t.Cleanup(func() { terminationLogPath = old })

	var out, errOut bytes.Buffer
	if code := fetchMain([]string{"--uri", "ftp://example.com/b/", "--dest", t.TempDir()}, &out, &errOut); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("the command created %s (%v)", missing, err)
	}
}

func TestFetchCommandVerify(t *testing.T) {
	dir, digest := writeBundle(t)
	code, stdout, stderr, _ := fetchCommand(t, "--verify", dir, "--digest", digest)
	if code != 0 || stdout != "bundle "+dir+" has digest "+digest+", as expected\n" {
		t.Errorf("matching digest: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr, _ = fetchCommand(t, "--verify", dir)
	if code != 0 || stdout != "bundle "+dir+" has digest "+digest+"\n" {
		t.Errorf("no digest: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	code, _, stderr, termination := fetchCommand(t, "--verify", dir, "--digest", wrong)
	want := "bundle " + dir + ": digest " + digest + " does not match spec.artifact.digest " + wrong
	if code != 1 || !strings.HasPrefix(stderr, want) || termination != stderr {
		t.Errorf("wrong digest: exit code %d, stderr %q, termination log %q; want 1 and %q", code, stderr, termination, want)
	}
}

func TestFetchCommandUsageErrors(t *testing.T) {
	dir, _ := writeBundle(t)
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"no flags": {nil, 1, "give --uri and --dest to fetch a bundle, or --verify DIR"},
		"no dest":  {[]string{"--uri", "s3://b/p/"}, 1, "give --uri and --dest"},
		"verify and uri": {[]string{"--verify", dir, "--uri", "s3://b/p/"}, 1,
			"--verify checks a bundle already in place"},
		"a bad size": {[]string{"--uri", "s3://b/p/", "--dest", dir, "--max-size", "lots"}, 1,
			`--max-size "lots" is not a size`},
		"a bad file count": {[]string{"--uri", "s3://b/p/", "--dest", dir, "--max-files", "0"}, 1,
			"--max-files 0 is not a positive number"},
		"an unknown flag":   {[]string{"--bucket", "b"}, 2, "flag provided but not defined: -bucket"},
		"an unknown scheme": {[]string{"--uri", "ftp://h/p/", "--dest", dir}, 1, `unsupported scheme "ftp"`},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr, termination := fetchCommand(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || !strings.Contains(termination, tc.want) {
				t.Errorf("exit code %d, stderr %q, termination log %q; want %d and %q", code, stderr, termination, tc.code, tc.want)
			}
		})
	}
}

func TestFetchCommandS3OptionsDefaultToTheEnvironment(t *testing.T) {
	parse := func(args ...string) (bundle.S3Options, error) {
		o := &fetchOptions{}
		fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
		if err := o.bindFlags(fs); err != nil {
			return bundle.S3Options{}, err
		}
		err := fs.Parse(args)
		return o.s3, err
	}
	t.Setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("PODIUM_S3_FORCE_PATH_STYLE", "true")
	got, err := parse()
	want := bundle.S3Options{Endpoint: "http://minio.storage:9000", Region: "eu-west-3", ForcePathStyle: true}
	if err != nil || got != want {
		t.Errorf("from the environment: %+v (%v), want %+v", got, err, want)
	}
	got, err = parse("--s3-endpoint", "https://s3.example.com", "--s3-region", "us-east-2", "--s3-force-path-style=false")
	want = bundle.S3Options{Endpoint: "https://s3.example.com", Region: "us-east-2"}
	if err != nil || got != want {
		t.Errorf("flags over the environment: %+v (%v), want %+v", got, err, want)
	}
	t.Setenv("PODIUM_S3_FORCE_PATH_STYLE", "yes please")
	_, err = parse()
	if err == nil || !strings.Contains(err.Error(), `PODIUM_S3_FORCE_PATH_STYLE="yes please" is neither true nor false`) {
		t.Errorf("a bad PODIUM_S3_FORCE_PATH_STYLE: err = %v", err)
	}
}

// TestManagerDispatchesFetch runs the test binary as the manager binary: `fetch` goes to the
// fetcher, anything else to the manager's flags as before.
func TestManagerDispatchesFetch(t *testing.T) {
	manager := func(args ...string) (string, error) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "PODIUM_TEST_RUN_MANAGER=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	dir, digest := writeBundle(t)
	if out, err := manager("fetch", "--verify", dir); err != nil || out != "bundle "+dir+" has digest "+digest+"\n" {
		t.Errorf("manager fetch --verify: %v, output %q", err, out)
	}
	out, err := manager("fetch", "--verify", dir, "--digest", "sha256:"+strings.Repeat("0", 64))
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 1 || !strings.Contains(out, "does not match") {
		t.Errorf("manager fetch with a wrong digest: %v, output %q", err, out)
	}
	out, err = manager("-h")
	if err != nil || !strings.Contains(out, "-leader-elect") || strings.Contains(out, "-verify") {
		t.Errorf("manager -h shows no manager usage: %v, output %q", err, out)
	}
}

// The secrets of TestFetchCommandShowsNoSecret, which neither stderr, stdout nor the termination
// log may show.
const (
	uriPassword  = "uri-password-1234"
	uriSignature = "signature-5678"
	envToken     = "env-token-9012"
)

func TestFetchCommandShowsNoSecret(t *testing.T) {
	dir, digest := writeBundle(t)
	archive, err := exec.Command("tar", "-czf", "-", "-C", dir, ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.tgz":
			_, _ = w.Write(archive)
		case "/forbidden.tgz":
			w.WriteHeader(http.StatusForbidden)
		case "/stalled.tgz":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	t.Setenv("PODIUM_HTTP_BEARER_TOKEN", envToken)
	host := strings.TrimPrefix(srv.URL, "http://")
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		return l.Addr().String()
	}()
	uri := func(host, path string) string {
		return "http://reader:" + uriPassword + "@" + host + path +
			"?X-Amz-Signature=" + uriSignature + "&sig=" + uriSignature
	}
	quick := []string{"--connect-timeout", "1s", "--response-timeout", "300ms", "--attempts", "2"}
	for name, tc := range map[string]struct {
		uri  string
		args []string
		code int
		want string
	}{
		"a fetch that succeeds": {uri(host, "/ok.tgz"), []string{"--digest", digest}, 0, "fetched http://reader:xxxxx@"},
		"a wrong digest": {uri(host, "/ok.tgz"), []string{"--digest", "sha256:" + strings.Repeat("0", 64)}, 1,
			"does not match"},
		"access denied":        {uri(host, "/forbidden.tgz"), nil, 1, "403 Forbidden"},
		"no archive there":     {uri(host, "/missing.tgz"), nil, 1, "404 Not Found"},
		"a refused connection": {uri(refused, "/b.tgz"), nil, 1, "connection refused"},
		"a stalled server":     {uri(host, "/stalled.tgz"), nil, 1, "timeout awaiting response headers"},
		"the whole timeout": {uri(host, "/stalled.tgz"), []string{"--timeout", "500ms", "--response-timeout", "1h"}, 1,
			"the fetch took longer than --timeout 500ms"},
		"an unparsable URI": {"http://reader:" + uriPassword + "%zz@" + host + "/b.tgz", nil, 1, "not a URI"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"--uri", tc.uri, "--dest", filepath.Join(t.TempDir(), "model")}
			args = append(append(args, quick...), tc.args...)
			start := time.Now()
			code, stdout, stderr, termination := fetchCommand(t, args...)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the command ended after %s, want within seconds", took)
			}
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit code %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, tc.code, tc.want)
			}
			if code != 0 && (strings.Count(stderr, "\n") != 1 || termination != stderr || !strings.Contains(stderr, "xxxxx")) {
				t.Errorf("stderr %q, termination log %q: want the same one line, with the URI redacted", stderr, termination)
			}
			for _, secret := range []string{uriPassword, uriSignature, envToken} {
				for what, text := range map[string]string{"stdout": stdout, "stderr": stderr, "the termination log": termination} {
					if strings.Contains(text, secret) {
						t.Errorf("%s shows the secret %q: %q", what, secret, text)
					}
				}
			}
		})
	}
}

func TestFetchCommandHTTPCredentialsFromTheEnvironment(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"a token and a password": {map[string]string{
			"PODIUM_HTTP_BEARER_TOKEN": "t", "PODIUM_HTTP_USERNAME": "u", "PODIUM_HTTP_PASSWORD": envToken,
		},
			"set either PODIUM_HTTP_BEARER_TOKEN or PODIUM_HTTP_USERNAME and PODIUM_HTTP_PASSWORD, not both"},
		"a password alone": {map[string]string{"PODIUM_HTTP_PASSWORD": envToken},
			"set both PODIUM_HTTP_USERNAME and PODIUM_HTTP_PASSWORD, or neither"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dest := filepath.Join(t.TempDir(), "model")
			code, _, stderr, _ := fetchCommand(t, "--uri", "https://example.com/b.tgz", "--dest", dest)
			if code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, envToken) {
				t.Errorf("exit code %d, stderr %q; want 1 and %q, without the password", code, stderr, tc.want)
			}
		})
	}
}
