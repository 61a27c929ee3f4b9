package controller

import (
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// DefaultFetcherImage is the operator's own image, which runs `manager fetch`.
const DefaultFetcherImage = "ghcr.io/podium-dev/podium:latest"

// DefaultMaxConcurrentReconciles is how many models the operator reconciles in parallel.
const DefaultMaxConcurrentReconciles = 8

// Options are the operator's own settings: the manager's flags set them, and the test suites
// start from the same defaults, so that the operator they run is the one users run. What only a
// process needs (metrics, probes, leader election, the client's request rate) is not here.
type Options struct {
	// FetcherImage is the image of the prediction pods' init container that fetches bundles.
	FetcherImage string
	// InsecureRegistries are the registries (HOST[:PORT]) the fetcher reaches over plain HTTP.
	InsecureRegistries []string
	// MissingRetry is how often to look again for a missing storage Secret or claim.
	MissingRetry time.Duration
	// Namespaces limits the operator to these namespaces; all when empty.
	Namespaces []string
	// MaxConcurrentReconciles is how many models are reconciled in parallel.
	MaxConcurrentReconciles int
	// MaxAnalysisQueries bounds the online gates' queries in flight across every model, off
	// the reconcile workers.
	MaxAnalysisQueries int
	// StageRecordsPerModel is how many StageRecords are kept for one model name.
	StageRecordsPerModel int
}

// DefaultOptions are the settings of a manager started without flags.
func DefaultOptions() Options {
	return Options{
		FetcherImage:            DefaultFetcherImage,
		MissingRetry:            DefaultMissingRetry,
		MaxConcurrentReconciles: DefaultMaxConcurrentReconciles,
		MaxAnalysisQueries:      DefaultMaxQueries,
		StageRecordsPerModel:    mlv1.DefaultStageRecordsPerModel,
	}
}

// ManagerOptions returns base with the parts the operator decides: the cache, restricted to
// Namespaces, and the controllers' concurrency. The caller's scheme, metrics, probes, leader
// election and other controller settings are kept; its cache options are replaced.
func (o Options) ManagerOptions(base ctrl.Options) ctrl.Options {
	base.Cache = o.cacheOptions()
	base.Controller.MaxConcurrentReconciles = o.MaxConcurrentReconciles
	return base
}

func (o Options) cacheOptions() cache.Options {
	opts := CacheOptions()
	for _, ns := range o.Namespaces {
		if opts.DefaultNamespaces == nil {
			opts.DefaultNamespaces = map[string]cache.Config{}
		}
		opts.DefaultNamespaces[ns] = cache.Config{}
	}
	return opts
}

// AddToManager registers the operator's controllers with mgr, which was built from
// ManagerOptions.
func (o Options) AddToManager(mgr ctrl.Manager) error {
	if err := (&RegisteredModelReconciler{
		Client:               mgr.GetClient(),
		APIReader:            mgr.GetAPIReader(),
		Recorder:             mgr.GetEventRecorder("podium"),
		FetcherImage:         o.FetcherImage,
		InsecureRegistries:   o.InsecureRegistries,
		MissingRetry:         o.MissingRetry,
		MaxQueries:           o.MaxAnalysisQueries,
		StageRecordsPerModel: o.StageRecordsPerModel,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RegisteredModel controller: %w", err)
	}
	return nil
}
