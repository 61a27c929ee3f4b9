//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
)

// The e2e tier runs the real operator binary against a real (kwok) Kubernetes control plane:
// BeforeSuite starts a fresh cluster with hack/kwok-cluster.sh, installs the CRDs with kubectl
// and starts bin/manager as a child process; everything is torn down again, also on failure.
// Run it with 'make test-e2e', which provisions the binaries and builds the manager first.

// managerNamespace holds the manager's leader-election Lease. Out of cluster,
// controller-runtime cannot find its own namespace, so the manager is told it explicitly.
const managerNamespace = "podium-system"

var (
	repoRoot     string // the repository, where the tests run kubectl and the scripts from
	kubeBinDir   string // PODIUM_KUBE_BIN_DIR: kubectl, kube-apiserver, etcd, kwok, ...
	podiumBinDir string // PODIUM_BIN_DIR: the manager, kubectl-podium and helm binaries
	workDir      string // the suite's temporary files: logs, kubeconfigs
	clusterName  string
	kubeconfig   string
	probeAddr    string // the suite manager's health probe address
	manager      *managerProcess
	hostname     string
	// registryHost is where the OCI spec's registry listens: the suite manager is started
	// with --insecure-registry for it before the registry runs.
	registryHost string

	// showManagerLog is cleared once BeforeSuite has succeeded and set again by a failed spec:
	// the manager log is printed when the manager is stopped while it is set.
	showManagerLog = true
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	_, _ = fmt.Fprintf(GinkgoWriter, "Starting the Podium e2e suite\n")
	RunSpecs(t, "Podium e2e suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	SetDefaultEventuallyTimeout(2 * time.Minute)
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)

	var err error
	repoRoot, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	kubeBinDir = requireEnv("PODIUM_KUBE_BIN_DIR")
	podiumBinDir = requireEnv("PODIUM_BIN_DIR")
	hostname, err = os.Hostname()
	Expect(err).NotTo(HaveOccurred())
	Expect(managerBinary()).To(BeAnExistingFile(), "build it with 'make build'")
	crdDir := filepath.Join(repoRoot, "config", "crd", "bases")
	Expect(crdDir).To(BeADirectory(), "generate the CRDs with 'make manifests'")

	workDir, err = os.MkdirTemp("", "podium-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, workDir)

	// The cluster: its 'down' is registered before 'up', so a half-created cluster goes too.
	clusterName = fmt.Sprintf("podium-e2e-%d-%04x", os.Getpid(), rand.IntN(0x10000))
	clusterEnv := []string{"PODIUM_KUBE_BIN_DIR=" + kubeBinDir}
	script := filepath.Join(repoRoot, "hack", "kwok-cluster.sh")
	DeferCleanup(func(ctx SpecContext) {
		By("deleting kwok cluster " + clusterName)
		_, err := run(ctx, clusterEnv, "", script, "down", clusterName)
		Expect(err).NotTo(HaveOccurred())
	}, NodeTimeout(3*time.Minute))
	By("creating kwok cluster " + clusterName)
	start := time.Now()
	kubeconfig, err = run(ctx, clusterEnv, "", script, "up", clusterName)
	Expect(err).NotTo(HaveOccurred())
	Expect(kubeconfig).To(BeAnExistingFile())
	_, _ = fmt.Fprintf(GinkgoWriter, "cluster %s is up after %s, kubeconfig %s\n",
		clusterName, time.Since(start).Round(time.Second), kubeconfig)

	By("installing the CRDs")
	mustKubectl("apply", "--server-side", "-f", crdDir)
	mustKubectl("create", "namespace", managerNamespace)

	By("starting the manager")
	DeferCleanup(func() {
		if manager == nil {
			return
		}
		By("stopping the manager")
		manager.stop(30 * time.Second)
		if showManagerLog {
			manager.printLog()
		}
	})
	startSuiteManager("manager.log")
	showManagerLog = false
}, NodeTimeout(10*time.Minute))

// A failed spec shows the manager log when the suite ends.
var _ = AfterEach(func() {
	if CurrentSpecReport().Failed() {
		showManagerLog = true
	}
})

// managerAlive fails the spec when the manager has exited, showing its log.
func managerAlive() {
	GinkgoHelper()
	done, err := manager.exited()
	Expect(done).To(BeFalse(), "the manager exited (%v)", err)
}

// managerBinary is the manager that make test-e2e builds.
func managerBinary() string { return filepath.Join(podiumBinDir, "manager") }

// startSuiteManager starts the suite's manager, elected in managerNamespace and watching every
// namespace with the cluster admin's kubeconfig, logging to logName in workDir, and waits until
// it is ready.
func startSuiteManager(logName string) {
	GinkgoHelper()
	probeAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if registryHost == "" {
		registryHost = fmt.Sprintf("127.0.0.1:%d", freePort())
	}
	var err error
	manager, err = startManager(managerBinary(), filepath.Join(workDir, logName), kubeconfig,
		"--leader-elect",
		"--leader-election-namespace="+managerNamespace,
		"--health-probe-bind-address="+probeAddr,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", freePort()),
		"--insecure-registry="+registryHost,
	)
	Expect(err).NotTo(HaveOccurred())
	waitReady(manager, probeAddr)
}

// waitReady waits until the manager m answers its readiness probe on probe, and fails at once
// when it exits.
func waitReady(m *managerProcess, probe string) {
	GinkgoHelper()
	By("waiting for the manager to answer its readiness probe")
	Eventually(func(g Gomega) int {
		if done, err := m.exited(); done {
			StopTrying(fmt.Sprintf("the manager exited (%v):\n%s", err, m.logTail(8<<10))).Now()
		}
		code, err := httpStatus("http://" + probe + "/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		return code
	}).Should(Equal(200))
}
