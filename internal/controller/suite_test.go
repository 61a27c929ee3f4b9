package controller_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/podium-dev/podium/internal/controller"
	"github.com/podium-dev/podium/internal/testenv"
)

// The suite runs a real kube-apiserver and etcd (KUBEBUILDER_ASSETS, set by `make test`), with
// Podium's CRDs, and the operator in-process, as internal/testenv sets it up.

var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	testScheme = testenv.Scheme()
	stopMgr    func()
)

const (
	testFetcherImage = testenv.FetcherImage
	// FieldOwner is the field manager the operator applies with.
	FieldOwner = controller.FieldOwner
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	testEnv = testenv.Environment()
	var err error
	DeferCleanup(func() { Expect(testEnv.Stop()).To(Succeed()) }) // also after a start that failed halfway
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())

	stopMgr = startManager()
	DeferCleanup(func() { stopMgr() })
})

// recordsPerModel is the suite's retention bound of StageRecords, low enough for a spec to pass it.
const recordsPerModel = 10

// startManager runs the operator until the returned function is called; that function waits
// for it to stop. A missing Secret or claim is looked for again after a second, not 30.
func startManager() func() {
	stop, err := testenv.Operator{MissingRetry: time.Second, StageRecordsPerModel: recordsPerModel}.Start(cfg, testScheme)
	Expect(err).NotTo(HaveOccurred())
	return func() { Expect(stop()).To(Succeed()) }
}
