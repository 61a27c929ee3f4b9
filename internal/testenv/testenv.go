// Package testenv runs Podium against a real kube-apiserver and etcd (envtest) for the test
// suites: the API server with Podium's CRDs, and the operator in-process, set up by the same code
// and with the same defaults as the manager (controller.Options). It is used by tests only.
package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
)

// FetcherImage is the fetcher image the test operator renders into prediction pods.
const FetcherImage = "registry.example/podium:test"

// Scheme holds the Kubernetes kinds, Podium's and the CRD kind.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(mlv1.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

// Environment returns an envtest environment with Podium's CRDs from config/crd/bases; the
// binaries come from KUBEBUILDER_ASSETS, which `make test` sets.
//
// Its API server also runs the OwnerReferencesPermissionEnforcement admission plugin, on by
// default in OpenShift: an owner reference with blockOwnerDeletion, as on the prediction
// Deployment, then needs the right to update the owner's finalizers. The plugin is added to the
// API server's default plugins (ValidatingAdmissionPolicy and, since Kubernetes 1.36,
// MutatingAdmissionPolicy among them, which the governance tests need); envtest only disables
// ServiceAccount.
func Environment() *envtest.Environment {
	_, file, _, _ := runtime.Caller(0)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(filepath.Dir(file), "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	return env
}

// Operator is Podium's operator as a test runs it: as a manager started without flags runs it,
// except that it renders FetcherImage and follows what its fields set.
type Operator struct {
	// Namespaces limits the operator to these namespaces; all when empty.
	Namespaces []string
	// MissingRetry is how soon a missing storage Secret or claim is looked for again; the
	// manager's default when zero.
	MissingRetry time.Duration
	// StageRecordsPerModel is how many StageRecords the operator keeps for one model name; the
	// manager's default when zero.
	StageRecordsPerModel int
}

// options are the operator's settings: the manager's defaults, changed only where a test asks.
func (o Operator) options() controller.Options {
	opts := controller.DefaultOptions()
	opts.FetcherImage = FetcherImage
	opts.Namespaces = o.Namespaces
	if o.MissingRetry > 0 {
		opts.MissingRetry = o.MissingRetry
	}
	if o.StageRecordsPerModel > 0 {
		opts.StageRecordsPerModel = o.StageRecordsPerModel
	}
	return opts
}

// Start runs the operator until the returned function is called; that function stops it and
// returns the manager's error, if any, and may be called more than once.
func (o Operator) Start(cfg *rest.Config, scheme *k8sruntime.Scheme) (stop func() error, err error) {
	opts := o.options()
	// Unlike the manager: no metrics server or probes to bind, and no leader election.
	mgr, err := ctrl.NewManager(cfg, opts.ManagerOptions(ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Suites start several operators in one process, one after the other.
		Controller: config.Controller{SkipNameValidation: new(true)},
	}))
	if err != nil {
		return nil, err
	}
	if err := opts.AddToManager(mgr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}, nil
}

// GatewayAPICRDs is the directory of the Gateway API's standard-channel CRDs in the module go.mod
// pins. The suites that need them install them themselves, so that the others run, as many
// clusters do, without them.
func GatewayAPICRDs() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return "", fmt.Errorf("finding the sigs.k8s.io/gateway-api module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard"), nil
}

// HTTPRouteCRD is the file of the HTTPRoute CRD in GatewayAPICRDs' directory.
const HTTPRouteCRD = "gateway.networking.k8s.io_httproutes.yaml"
