package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
)

// defaultFetcherImage is the operator's image, which runs `manager fetch`.
const defaultFetcherImage = "ghcr.io/podium-dev/podium:latest"

// managerOptions are the manager's command-line flags.
type managerOptions struct {
	metricsAddr             string
	secureMetrics           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	enableHTTP2             bool
	qps                     float64
	burst                   int
	concurrency             int
	watchNamespaces         string
	fetcherImage            string
}

func (o *managerOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint: :8443 for HTTPS, :8080 for HTTP, 0 to disable it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS with Kubernetes authentication and authorization; false serves plain HTTP.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that only one of several managers acts.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; required when the manager runs outside the cluster.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server (off by default: HTTP/2 Rapid Reset, CVE-2023-44487).")
	fs.Float64Var(&o.qps, "kube-api-qps", 500, "Requests per second the manager may send to the API server.")
	fs.IntVar(&o.burst, "kube-api-burst", 1000, "Burst of requests the manager may send to the API server.")
	fs.IntVar(&o.concurrency, "max-concurrent-reconciles", 8, "Models reconciled in parallel.")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	fs.StringVar(&o.fetcherImage, "fetcher-image", defaultFetcherImage,
		"Image of the prediction pods' init container that fetches bundles (runs 'manager fetch'): the operator's "+
			"own image, which the Helm chart sets.")
}

// cacheOptions is the controllers' cache, restricted to --watch-namespaces when it is set.
func (o *managerOptions) cacheOptions() cache.Options {
	opts := controller.CacheOptions()
	for ns := range strings.SplitSeq(o.watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if opts.DefaultNamespaces == nil {
				opts.DefaultNamespaces = map[string]cache.Config{}
			}
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(mlv1.AddToScheme(s))
	return s
}

// runManager builds the manager with its controllers and runs it until ctx ends.
func runManager(ctx context.Context, o *managerOptions) error {
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster (KUBECONFIG or in-cluster config): %w", err)
	}
	restConfig.QPS, restConfig.Burst = float32(o.qps), o.burst

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        newScheme(),
		Metrics:                       o.metricsOptions(),
		Cache:                         o.cacheOptions(),
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "podium.ml.podium.dev",
		LeaderElectionNamespace:       o.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{MaxConcurrentReconciles: o.concurrency},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := (&controller.RegisteredModelReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("podium"),
		FetcherImage: o.fetcherImage,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RegisteredModel controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
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
