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

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
)

// The suite runs the plugin's commands in-process against a real kube-apiserver and etcd
// (KUBEBUILDER_ASSETS, set by `make test`) with Podium's CRDs. Specs that wait for the operator run
// the real RegisteredModelReconciler on their own namespace.

var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	kubeconfig string // a kubeconfig file for the test cluster, as --kubeconfig takes it
	testScheme = runtime.NewScheme()
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
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(mlv1.AddToScheme(testScheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(testScheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(testEnv.Stop()).To(Succeed()) })

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

// startOperator runs the RegisteredModelReconciler, as the manager does, on the objects of
// namespace ns until the spec ends or the returned function is called, which waits for it to stop.
// operatorCache is the operator's cache, limited to one namespace.
func operatorCache(ns string) cache.Options {
	o := controller.CacheOptions()
	o.DefaultNamespaces = map[string]cache.Config{ns: {}}
	return o
}

func startOperator(ns string) (stop func()) {
	GinkgoHelper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  operatorCache(ns),
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&controller.RegisteredModelReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("podium"),
		FetcherImage: "registry.example/podium:test",
	}).SetupWithManager(mgr)).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	stop = func() {
		cancel()
		<-done
	}
	DeferCleanup(stop)
	return stop
}
