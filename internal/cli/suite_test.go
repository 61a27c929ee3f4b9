package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/podium-dev/podium/internal/testenv"
)

// The suite runs the plugin's commands in-process against a real kube-apiserver and etcd
// (KUBEBUILDER_ASSETS, set by `make test`) with Podium's CRDs. Specs that wait for the operator run
// the real RegisteredModelReconciler on their own namespace.

var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	kubeconfig string // a kubeconfig file for the test cluster, as --kubeconfig takes it
	testScheme = testenv.Scheme()
)

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl podium Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyDuration(time.Second)

	testEnv = testenv.Environment()
	var err error
	DeferCleanup(func() { Expect(testEnv.Stop()).To(Succeed()) }) // also after a start that failed halfway
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = writeKubeconfig(testEnv)
})

// writeKubeconfig writes a kubeconfig file for an administrator of env.
func writeKubeconfig(env *envtest.Environment) string {
	GinkgoHelper()
	user, err := env.AddUser(envtest.User{Name: "podium-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// result is what one run of the plugin printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

// podium runs `kubectl podium ARGS -n ns` in-process against the test cluster.
func podium(ctx context.Context, ns string, args ...string) result {
	return podiumWith(ctx, kubeconfig, ns, args...)
}

// podiumWith runs the plugin against the cluster of the kubeconfig file.
func podiumWith(ctx context.Context, kubeconfigFile, ns string, args ...string) result {
	var stdout, stderr bytes.Buffer
	cmd := newRootCommand(&root{
		streams:      genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &stdout, ErrOut: &stderr},
		now:          time.Now,
		pollInterval: 100 * time.Millisecond,
	})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfigFile, "--namespace", ns}, args...))
	err := cmd.ExecuteContext(ctx)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// succeed runs the plugin and fails the spec when it fails; it returns stdout.
func succeed(ctx context.Context, ns string, args ...string) string {
	GinkgoHelper()
	r := podium(ctx, ns, args...)
	Expect(r.err).NotTo(HaveOccurred(), "kubectl podium %v\nstderr: %s", args, r.stderr)
	return r.stdout
}

// startOperator runs the operator, as the manager does, on the objects of namespace ns until the
// spec ends or the returned function is called, which waits for it to stop.
func startOperator(ns string) (stop func()) {
	GinkgoHelper()
	stopOperator, err := testenv.Operator{Namespaces: []string{ns}}.Start(cfg, testScheme)
	Expect(err).NotTo(HaveOccurred())
	stop = func() { Expect(stopOperator()).To(Succeed()) }
	DeferCleanup(stop)
	return stop
}
