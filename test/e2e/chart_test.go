//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive,staticcheck
	. "github.com/onsi/gomega"    //nolint:revive,staticcheck
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/podium-dev/podium/internal/testregistry"
)

// The chart spec pushes charts/podium to a real registry and installs it from there with the
// real helm (helm install oci://...) into a namespace that enforces the "restricted" Pod
// Security Standard, and checks that the API server admits the manager's pods (kwok runs them,
// so no manager runs inside). Then it runs bin/manager on the host with the
// chart's ServiceAccount token, watching that namespace only, through the seed's promotion and a
// rollback: a "forbidden" in its log or in the namespace's Events fails the spec.
//
// The suite's manager is stopped meanwhile and started again afterwards. Were it running, it
// would make the same decisions in the namespace, and the chart-credential manager could find
// every status already written and never try a write that the chart's RBAC forbids.
var _ = Describe("The Helm chart", Serial, func() {
	const ns, release = "e2e-chart", "e2e-chart"
	const name = release + "-podium-controller-manager" // the Deployment and its ServiceAccount

	helm := func(args ...string) (string, error) {
		env := []string{
			"HELM_CACHE_HOME=" + filepath.Join(workDir, "helm", "cache"),
			"HELM_CONFIG_HOME=" + filepath.Join(workDir, "helm", "config"),
			"HELM_DATA_HOME=" + filepath.Join(workDir, "helm", "data"),
		}
		return run(context.Background(), env, "", filepath.Join(podiumBinDir, "helm"),
			append(args, "--kubeconfig", kubeconfig)...)
	}

	It("installs under restricted Pod Security, and its RBAC suffices for a promotion and a rollback", func() {
		managerAlive()
		createNamespace(ns)
		mustKubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")

		By("pushing the packaged chart to a registry, as make chart-push does, and under an earlier version")
		reg := testregistry.Start(GinkgoT(), testregistry.Options{})
		packages := filepath.Join(workDir, "helm", "packages")
		_, err := helm("package", filepath.Join(repoRoot, "charts", "podium"), "-d", packages)
		Expect(err).NotTo(HaveOccurred())
		archives, err := filepath.Glob(filepath.Join(packages, "podium-*.tgz"))
		Expect(err).NotTo(HaveOccurred())
		Expect(archives).To(HaveLen(1))
		version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(archives[0]), "podium-"), ".tgz")
		_, err = helm("push", archives[0], "oci://"+reg.Host+"/charts", "--plain-http")
		Expect(err).NotTo(HaveOccurred())
		// The earlier version is this chart under a lower version number: no release of the chart
		// exists yet to upgrade from, and this still proves that an upgrade applies (no immutable
		// field, such as a Deployment's selector, changes with the chart's version).
		previous := version + "-previous"
		earlier := filepath.Join(workDir, "helm", "earlier")
		_, err = helm("package", filepath.Join(repoRoot, "charts", "podium"), "-d", earlier, "--version", previous)
		Expect(err).NotTo(HaveOccurred())
		_, err = helm("push", filepath.Join(earlier, "podium-"+previous+".tgz"), "oci://"+reg.Host+"/charts", "--plain-http")
		Expect(err).NotTo(HaveOccurred())

		By("installing the earlier chart from oci:// with helm, then upgrading to this one; the suite has installed the CRDs")
		values := []string{"-n", ns, "--plain-http", "--set", "watchNamespaces={" + ns + "}"}
		_, err = helm(append([]string{"install", release, "oci://" + reg.Host + "/charts/podium", "--version", previous,
			"--skip-crds", "--set", "replicaCount=1"}, values...)...)
		Expect(err).NotTo(HaveOccurred())
		_, err = helm(append([]string{"upgrade", release, "oci://" + reg.Host + "/charts/podium", "--version", version,
			"--skip-crds", "--set", "replicaCount=2"}, values...)...)
		Expect(err).NotTo(HaveOccurred())
		Expect(mustKubectl("get", "deployment", name, "-n", ns, "-o", "jsonpath={.metadata.labels.helm\\.sh/chart}")).
			To(Equal("podium-"+version), "the upgrade applied this chart")
		// Uninstalling also deletes the ClusterRoles and ClusterRoleBinding, which outlive the namespace.
		DeferCleanup(func() {
			_, err := helm("uninstall", release, "-n", ns)
			Expect(err).NotTo(HaveOccurred())
			awaitGovernanceGone(ns)
		})

		By("waiting for both manager pods: the restricted namespace admits them")
		Eventually(func(g Gomega) string {
			failed := mustKubectl("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate",
				"-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
			if failed != "" {
				StopTrying("the ReplicaSet could not create the manager pods:\n" + failed).Now()
			}
			out, err := kubectl("get", "deployment", name, "-n", ns, "-o", "jsonpath={.status.readyReplicas}")
			g.Expect(err).NotTo(HaveOccurred())
			return out
		}).Should(Equal("2"))

		By("writing a kubeconfig with a token of the chart's ServiceAccount")
		chartKubeconfig := tokenKubeconfig(mustKubectl("create", "token", name, "-n", ns, "--duration=10m"))
		canI, _ := run(context.Background(), nil, "", filepath.Join(kubeBinDir, "kubectl"),
			"--kubeconfig", chartKubeconfig, "auth", "can-i", "list", "secrets", "-n", ns)
		Expect(strings.TrimSpace(canI)).To(Equal("no"), "the API server must enforce RBAC for this spec to prove anything")

		By("stopping the suite's manager")
		manager.stop(30 * time.Second)
		DeferCleanup(func() {
			By("starting the suite's manager again")
			startSuiteManager("manager-after-chart.log")
		})

		// The API server applies a new MutatingAdmissionPolicy some time after it is created, and
		// refuses the ModelVersions it applies to as ServiceUnavailable ("Resource kind ... not
		// found") until it has resolved their schema. The chart's manager is ready only after both
		// (--governance-probe-namespace), which is what helm install --wait waits for on a real
		// cluster; here its pods do not run, so the spec waits for the same manager on the host,
		// and then applies the seed once, as a user would, with no retry.
		By("running the manager with the chart's credentials and arguments, elected and watching in " + ns)
		chartProbe := fmt.Sprintf("127.0.0.1:%d", freePort())
		chartManager, err := startManager(managerBinary(), filepath.Join(workDir, "chart-manager.log"), chartKubeconfig,
			"--leader-elect", "--leader-election-namespace="+ns, "--watch-namespaces="+ns,
			"--governance-probe-namespace="+ns,
			"--health-probe-bind-address="+chartProbe, "--metrics-bind-address=0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			chartManager.stop(30 * time.Second)
			if CurrentSpecReport().Failed() {
				chartManager.printLog()
			}
		})
		waitReady(chartManager, chartProbe)

		promoteSeed(ns)
		rollBackSeed(ns)

		By("finding no forbidden request in the manager's log or the namespace's Events")
		Expect(chartManager.logTail(1 << 20)).NotTo(MatchRegexp(`(?i)forbidden`))
		Expect(mustKubectl("get", "events", "-n", ns, "-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)).
			NotTo(MatchRegexp(`(?i)forbidden`))
	})
})

// tokenKubeconfig writes a copy of the cluster's kubeconfig that authenticates with token, and
// returns its path.
func tokenKubeconfig(token string) string {
	GinkgoHelper()
	config, err := clientcmd.LoadFromFile(kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	config.AuthInfos = map[string]*clientcmdapi.AuthInfo{"token": {Token: token}}
	config.Contexts[config.CurrentContext].AuthInfo = "token"
	f, err := os.CreateTemp(workDir, "token-*.kubeconfig")
	Expect(err).NotTo(HaveOccurred())
	Expect(f.Close()).To(Succeed())
	Expect(clientcmd.WriteToFile(*config, f.Name())).To(Succeed())
	return f.Name()
}
