// Package testregistry runs a real OCI registry, the CNCF Distribution registry that
// hack/registry.sh builds, on a loopback port for the tests of oci:// bundles.
package testregistry

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// EnvBinary names the registry binary; `make test-unit` sets it to what hack/registry.sh prints.
const EnvBinary = "PODIUM_REGISTRY"

// Registry is a running registry that keeps its blobs in a temporary directory.
type Registry struct {
	// Host is the registry's host:port on loopback, as an oci:// URI names it.
	Host string
	root string
}

// Options configure Start.
type Options struct {
	// Users, when set, makes the registry require basic authentication with these user names
	// and passwords (an htpasswd file of bcrypt hashes).
	Users map[string]string
	// Host, when set, is the loopback host:port to listen on, such as one that a process
	// started before the registry was already told about; else a free port is chosen.
	Host string
}

// T is what Start needs of a test: a *testing.T, or Ginkgo's GinkgoT().
type T interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Start starts a registry for the test and stops it, removing its storage, when the test ends,
// whether it passes or fails. It skips the test when PODIUM_REGISTRY is not set.
func Start(t T, opts Options) *Registry {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skip(EnvBinary + " is not set: run `make test-unit` (or set it to the path printed by hack/registry.sh) to run the OCI registry tests")
	}
	dir := t.TempDir()
	r := &Registry{root: filepath.Join(dir, "storage")}
	r.Host = opts.Host
	if r.Host == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.Host = l.Addr().String()
		_ = l.Close() // the registry listens here next; another process taking it first is unlikely
	}

	auth := ""
	if len(opts.Users) > 0 {
		var htpasswd bytes.Buffer
		for user, password := range opts.Users {
			hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&htpasswd, "%s:%s\n", user, hash)
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, htpasswd.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: podium-test\n    path: %s\n", path)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: podium-test-secret
%s`, r.root, r.Host, auth)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	cmd := exec.Command(bin, "serve", configPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	// The registry dies with the test binary, even when that dies without running its clean-ups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if err := r.waitReady(exited, 30*time.Second); err != nil {
		t.Fatalf("the registry (%s, %s) did not start: %v\n%s", bin, EnvBinary, err, log.String())
	}
	return r
}

// waitReady polls the registry's API root until it answers (200, or 401 when it requires
// authentication).
func (r *Registry) waitReady(exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/ answered %s", resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("the registry exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteBlob removes a blob from the registry's storage behind its back, as a damaged or
// half-replicated registry would lose it.
func (r *Registry) DeleteBlob(t T, digest string) {
	t.Helper()
	hex := strings.TrimPrefix(digest, "sha256:")
	dir := filepath.Join(r.root, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the blob %s is not in the registry's storage: %v", digest, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}
