// Package testprometheus runs a real Prometheus server, the one hack/prometheus.sh builds, on a
// loopback port for the tests of the online analysis gates. It scrapes the targets a test names
// every second, so a counter a test increments is queryable a few seconds later.
package testprometheus

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// EnvBinary names the prometheus binary; `make test-unit` sets it to what hack/prometheus.sh prints.
const EnvBinary = "PODIUM_PROMETHEUS"

// ScrapeInterval is how often the server scrapes its targets.
const ScrapeInterval = time.Second

// Server is a running Prometheus that keeps its TSDB in a temporary directory.
type Server struct {
	// Address is the server's base URL on loopback, http://127.0.0.1:PORT.
	Address string
}

// T is what Start needs of a test: a *testing.T, or Ginkgo's GinkgoT().
type T interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Start starts a Prometheus that scrapes targets (host:port, path /metrics, keeping the targets'
// own labels) and stops it, with its process group, when the test ends, whether it passes or
// fails; a failed test gets the server's log. It skips the test when PODIUM_PROMETHEUS is not set.
func Start(t T, targets []string) *Server {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skip(EnvBinary + " is not set: run `make test-unit` (or set it to the path printed by hack/prometheus.sh) to run the Prometheus tests")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	_ = l.Close() // Prometheus listens here next; another process taking it first is unlikely
	s := &Server{Address: "http://" + host}

	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config(targets)), 0o600); err != nil {
		t.Fatal(err)
	}

	log := &syncBuffer{}
	cmd := exec.Command(bin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+host,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so the clean-up kills whatever it started; and it dies with the test
	// binary, even when that dies without running its clean-ups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	if err := s.waitReady(exited, 30*time.Second); err != nil {
		t.Fatalf("Prometheus (%s, %s) did not start: %v\n%s", bin, EnvBinary, err, log.String())
	}
	return s
}

// config is a configuration that scrapes targets every ScrapeInterval.
func config(targets []string) string {
	quoted := make([]string, len(targets))
	for i, target := range targets {
		quoted[i] = fmt.Sprintf("%q", target)
	}
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: test
    honor_labels: true
    static_configs:
      - targets: [%[2]s]
`, ScrapeInterval, strings.Join(quoted, ", "))
}

// waitReady polls /-/ready until Prometheus answers 200, which it does once its TSDB is open.
func (s *Server) waitReady(exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Address+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /-/ready answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("prometheus exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncBuffer collects the server's output; the test reads it while the process may still write.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartWithGauge starts a Prometheus that scrapes one gauge the test sets, by labels: what the
// prediction pods of each version would report, on an exporter of the test's own that stops with
// the test.
func StartWithGauge(t T, name string, labels ...string) (*Server, *prometheus.GaugeVec) {
	t.Helper()
	reg := prometheus.NewRegistry()
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "A value the test sets."}, labels)
	reg.MustRegister(gauge)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(exporter.Close)
	return Start(t, []string{strings.TrimPrefix(exporter.URL, "http://")}), gauge
}
