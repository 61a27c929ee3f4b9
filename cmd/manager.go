package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/admission"
	"github.com/podium-dev/podium/internal/controller"
)

// defaultLeaderElectionID names the Lease; changing it would let an upgraded manager act next to
// an old one that holds the old Lease.
const defaultLeaderElectionID = "podium.ml.podium.dev"

// managerOptions are the manager's command-line flags: the operator's settings, which the test
// suites share, and what only a running process needs.
type managerOptions struct {
	operator        controller.Options
	watchNamespaces string // comma-separated; becomes operator.Namespaces
	// governanceProbeNamespace, when set, holds readiness until the governance admission
	// policies stamp a ModelVersion dry-run-created there (internal/admission).
	governanceProbeNamespace string
	// insecureRegistries are the --insecure-registry values, each a comma-separated list; they
	// become operator.InsecureRegistries.
	insecureRegistries stringList

	metricsAddr             string
	secureMetrics           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	leaderElectionID        string
	leaseDuration           time.Duration
	renewDeadline           time.Duration
	retryPeriod             time.Duration
	enableHTTP2             bool
	qps                     float64
	burst                   int
}

func (o *managerOptions) bindFlags(fs *flag.FlagSet) {
	o.operator = controller.DefaultOptions()
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint: :8443 for HTTPS, :8080 for HTTP, 0 to disable it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS with Kubernetes authentication and authorization; false serves plain HTTP.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true,
		"Elect a leader, so that only one of several managers acts; --leader-elect=false for a single manager "+
			"outside the cluster.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; required when the manager runs outside the cluster.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", defaultLeaderElectionID,
		"Name of the leader election Lease: managers with the same name and namespace compete.")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a standby manager waits after the leader's last renewal before it takes the Lease over.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew the Lease before it gives up leadership and exits; "+
			"shorter than the lease duration.")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second,
		"How often managers try to acquire or renew the Lease.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server (off by default: HTTP/2 Rapid Reset, CVE-2023-44487).")
	fs.Float64Var(&o.qps, "kube-api-qps", 500, "Requests per second the manager may send to the API server.")
	fs.IntVar(&o.burst, "kube-api-burst", 1000, "Burst of requests the manager may send to the API server.")
	fs.IntVar(&o.operator.MaxConcurrentReconciles, "max-concurrent-reconciles", o.operator.MaxConcurrentReconciles,
		"Models reconciled in parallel.")
	fs.IntVar(&o.operator.MaxAnalysisQueries, "max-analysis-queries", o.operator.MaxAnalysisQueries,
		"Online gates' Prometheus queries in flight at once, across every model; they run off the reconcile workers.")
	fs.IntVar(&o.operator.StageRecordsPerModel, "stage-records-per-model", o.operator.StageRecordsPerModel,
		"StageRecords kept for one model name, across the models created under it; the oldest are deleted first, "+
			"checked every 100 transitions.")
	fs.StringVar(&o.governanceProbeNamespace, "governance-probe-namespace", "",
		"Namespace in which /readyz dry-run-creates a ModelVersion, ready only once the governance admission "+
			"policies admit and stamp it, so that an install waits until the API server applies them; empty skips the check.")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	fs.StringVar(&o.operator.FetcherImage, "fetcher-image", o.operator.FetcherImage,
		"Image of the prediction pods' init container that fetches bundles (runs 'manager fetch'): the operator's "+
			"own image, which the Helm chart sets.")
	fs.Var(&o.insecureRegistries, "insecure-registry",
		"A registry (HOST[:PORT], as in oci:// URIs) that serves plain HTTP: the fetcher of a bundle there gets "+
			"--insecure-registry. Repeat the flag or separate hosts with commas; none by default. It does not reach "+
			"image volumes, which the node's container runtime pulls.")
}

// stringList is a flag that may be repeated, each value a comma-separated list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if strings.Contains(item, "/") {
			return fmt.Errorf("%q is not HOST[:PORT], the registry as an oci:// URI names it (no scheme or path)", item)
		}
		if item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// operatorOptions are the operator's settings from the flags, limited to --watch-namespaces when
// it is set.
func (o *managerOptions) operatorOptions() controller.Options {
	opts := o.operator
	opts.Namespaces = nil
	opts.InsecureRegistries = slices.Clone(o.insecureRegistries)
	for ns := range strings.SplitSeq(o.watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			opts.Namespaces = append(opts.Namespaces, ns)
		}
	}
	return opts
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(mlv1.AddToScheme(s))
	// The HTTPRoute kind is known so that a model's route can be applied and read; it is never
	// watched or cached, so the manager starts on a cluster without the Gateway API.
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

// inClusterNamespaceFile is where a pod finds its namespace, which holds the Lease by default.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// validateLeaderElection rejects lease settings that client-go would reject only once the manager
// runs, and names the flags instead of the option fields.
func (o *managerOptions) validateLeaderElection() error {
	return o.checkLeaderElection(inClusterNamespaceFile)
}

// checkLeaderElection is validateLeaderElection with the pod's namespace file at namespaceFile.
func (o *managerOptions) checkLeaderElection(namespaceFile string) error {
	if !o.leaderElect {
		return nil
	}
	if o.leaderElectionNamespace == "" {
		if _, err := os.Stat(namespaceFile); err != nil {
			return errors.New("leader election outside the cluster needs --leader-election-namespace " +
				"(or --leader-elect=false when no other manager can run)")
		}
	}
	switch {
	case o.retryPeriod <= 0:
		return fmt.Errorf("--leader-election-retry-period must be positive, not %s", o.retryPeriod)
	case o.renewDeadline >= o.leaseDuration:
		return fmt.Errorf("--leader-election-renew-deadline (%s) must be shorter than --leader-election-lease-duration (%s)",
			o.renewDeadline, o.leaseDuration)
	case float64(o.renewDeadline) <= leaderelection.JitterFactor*float64(o.retryPeriod):
		return fmt.Errorf("--leader-election-renew-deadline (%s) must be longer than %.1f × "+
			"--leader-election-retry-period (%s)", o.renewDeadline, leaderelection.JitterFactor, o.retryPeriod)
	}
	return nil
}

// runManager builds the manager with its controllers and runs it until ctx ends.
func runManager(ctx context.Context, o *managerOptions) error {
	if err := o.validateLeaderElection(); err != nil {
		return err
	}
	if o.operator.StageRecordsPerModel < 1 {
		return fmt.Errorf("--stage-records-per-model must be at least 1, not %d", o.operator.StageRecordsPerModel)
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster (KUBECONFIG or in-cluster config): %w", err)
	}
	restConfig.QPS, restConfig.Burst = float32(o.qps), o.burst

	operator := o.operatorOptions()
	mgr, err := ctrl.NewManager(restConfig, operator.ManagerOptions(ctrl.Options{
		Scheme:                        newScheme(),
		Metrics:                       o.metricsOptions(),
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              o.leaderElectionID,
		LeaderElectionNamespace:       o.leaderElectionNamespace,
		LeaseDuration:                 &o.leaseDuration,
		RenewDeadline:                 &o.renewDeadline,
		RetryPeriod:                   &o.retryPeriod,
		LeaderElectionReleaseOnCancel: true,
	}))
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := operator.AddToManager(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	if ns := o.governanceProbeNamespace; ns != "" {
		probe := &admission.GovernanceProbe{Client: mgr.GetClient(), Namespace: ns}
		if err := mgr.AddReadyzCheck("governance-policies", probe.Check); err != nil {
			return err
		}
	}
	ctrl.Log.WithName("setup").Info("Starting manager")
	return mgr.Start(ctx)
}

func (o *managerOptions) metricsOptions() metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics}
	if !o.enableHTTP2 {
		opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	if o.secureMetrics {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}
