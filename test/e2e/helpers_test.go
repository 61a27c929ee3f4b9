//go:build e2e

package e2e

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

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// Helpers shared by the e2e specs. They drive the real binaries: the pinned kubectl against the
// kwok cluster, and the manager as a child process.

// commandTimeout bounds a single kubectl or script run, so a hung command fails the spec instead
// of the whole suite.
const commandTimeout = 2 * time.Minute

// run runs name with args (stdin from input when not empty) and returns its trimmed stdout; the
// error carries the command line and its stderr.
func run(ctx context.Context, env []string, input string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// Do not wait forever for output pipes held open by a stray grandchild.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// pluginEnv is the environment in which the pinned kubectl finds bin/kubectl-podium and talks to
// the e2e cluster, with extra variables after it.
func pluginEnv(extra ...string) []string {
	return append([]string{
		"PATH=" + podiumBinDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"KUBECONFIG=" + kubeconfig,
	}, extra...)
}

// kubectl runs the pinned kubectl against the e2e cluster and returns its trimmed stdout.
func kubectl(args ...string) (string, error) {
	return kubectlWithInput("", args...)
}

// kubectlWithInput is kubectl with input on stdin, e.g. kubectlWithInput(manifest, "apply", "-f", "-").
func kubectlWithInput(input string, args ...string) (string, error) {
	return run(context.Background(), nil, input, filepath.Join(kubeBinDir, "kubectl"),
		append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

// mustKubectl runs kubectl and fails the spec when it fails.
func mustKubectl(args ...string) string {
	GinkgoHelper()
	out, err := kubectl(args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// mustApply applies a manifest given as a string and fails the spec when that fails.
func mustApply(manifest string) {
	GinkgoHelper()
	_, err := kubectlWithInput(manifest, "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred())
}

// eventuallyKubectl polls kubectl until its stdout satisfies the matcher passed to Should, e.g.
//
//	eventuallyKubectl("get", "deploy", "x", "-o", "jsonpath={.status.readyReplicas}").Should(Equal("2"))
//
// A failing kubectl counts as "not yet", so objects that do not exist yet are waited for too.
func eventuallyKubectl(args ...string) AsyncAssertion {
	GinkgoHelper()
	return Eventually(func(g Gomega) string {
		out, err := kubectl(args...)
		g.Expect(err).NotTo(HaveOccurred())
		return out
	})
}

// createNamespace creates a namespace for one spec and deletes it when the spec ends.
func createNamespace(name string) {
	GinkgoHelper()
	mustKubectl("create", "namespace", name)
	DeferCleanup(func() {
		_, _ = kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() int {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// httpStatus returns the status code of a GET on url.
func httpStatus(url string) (int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	return resp.StatusCode, nil
}

// managerProcess is the operator binary running as a child process of the test.
type managerProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startManager starts binary with args, KUBECONFIG set to kubeconfigPath and its output in
// logPath.
func startManager(binary, logPath, kubeconfigPath string, args ...string) (*managerProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managerProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

// exited tells whether the process has ended, and how.
func (m *managerProcess) exited() (bool, error) {
	select {
	case <-m.done:
		return true, m.waitErr
	default:
		return false, nil
	}
}

// stop ends the process: SIGTERM, then SIGKILL when it has not exited within grace.
func (m *managerProcess) stop(grace time.Duration) {
	if done, _ := m.exited(); done {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(grace):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// logTail returns the last maxBytes of the manager's log.
func (m *managerProcess) logTail(maxBytes int) string {
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", m.logPath, err)
	}
	if len(data) > maxBytes {
		data = append([]byte("...\n"), data[len(data)-maxBytes:]...)
	}
	return string(data)
}

// printLog writes the manager log to the Ginkgo output (shown for failed specs and with -v).
func (m *managerProcess) printLog() {
	_, _ = fmt.Fprintf(GinkgoWriter, "\n===== manager log %s =====\n%s\n===== end of manager log =====\n",
		m.logPath, m.logTail(64<<10))
}

// requireEnv returns the value of an environment variable that make test-e2e sets.
func requireEnv(name string) string {
	GinkgoHelper()
	v := os.Getenv(name)
	Expect(v).NotTo(BeEmpty(), "%s is not set: run the e2e tests with 'make test-e2e'", name)
	return v
}
