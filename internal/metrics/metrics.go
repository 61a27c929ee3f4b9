// Package metrics holds Podium's Prometheus metrics. They are registered on controller-runtime's
// registry, so the manager's metrics endpoint serves them next to controller-runtime's own
// (controller_runtime_reconcile_errors_total and the rest). docs/operations.md lists them with
// example queries and alerts.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// NoProductionVersion is the version label of podium_production_version_info for a model that
// has no Production version.
const NoProductionVersion = "none"

// Every metric is labelled with the model's namespace and name, then its own labels.
const namespaceLabel, modelLabel = "namespace", "model"

func byModel(labels ...string) []string {
	return append([]string{namespaceLabel, modelLabel}, labels...)
}

var (
	stageTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podium_stage_transitions_total",
		Help: "Stage transitions of model versions, by model, stage left (empty for a new version), stage entered and reason.",
	}, byModel("from", "to", "reason"))

	gateEvaluations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podium_gate_evaluations_total",
		Help: "Evaluations of a version's metrics against its model's gates, by result (passed or failed).",
	}, byModel("result"))

	productionVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "podium_production_version_info",
		Help: "1 for each model, with its Production version as the version label (\"none\" when it has none).",
	}, byModel("version"))

	rolloutDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "podium_rollout_duration_seconds",
		Help:    "Time from a version's promotion to Production until its prediction Deployment serves it.",
		Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200},
	}, byModel())

	automaticRollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podium_automatic_rollbacks_total",
		Help: "Rollbacks the operator made by itself because a new Production version failed to roll out or its bake failed.",
	}, byModel())

	analysisMeasurements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podium_analysis_measurements_total",
		Help: "Measurements of a rollout's online gates, by metric and result (passed, failed or inconclusive).",
	}, byModel("metric", "result"))

	// vecs are every metric with namespace and model labels, for ForgetModel.
	vecs = []interface {
		prometheus.Collector
		DeletePartialMatch(prometheus.Labels) int
	}{stageTransitions, gateEvaluations, productionVersion, rolloutDuration, automaticRollbacks, analysisMeasurements}
)

func init() {
	for _, v := range vecs {
		metrics.Registry.MustRegister(v)
	}
}

// RecordTransition counts one stage transition of a version of model; from is empty for a
// version decided for the first time, as in the model's history.
func RecordTransition(namespace, model, from, to, reason string) {
	stageTransitions.WithLabelValues(namespace, model, from, to, reason).Inc()
}

// RecordGateEvaluation counts one evaluation of a version of model against the model's gates.
func RecordGateEvaluation(namespace, model string, passed bool) {
	result := "failed"
	if passed {
		result = "passed"
	}
	gateEvaluations.WithLabelValues(namespace, model, result).Inc()
}

// production remembers each model's version label, so that SetProductionVersion can delete the
// previous series after it has set the new one: a scrape never finds the model without a series.
var production = struct {
	sync.Mutex
	version map[[2]string]string // namespace and model -> version label
}{version: map[[2]string]string{}}

// SetProductionVersion records model's Production version (nil: none) in
// podium_production_version_info and deletes the series of the previous one.
func SetProductionVersion(namespace, model string, version *int64) {
	label := NoProductionVersion
	if version != nil {
		label = strconv.FormatInt(*version, 10)
	}
	key := [2]string{namespace, model}
	production.Lock()
	defer production.Unlock()
	productionVersion.WithLabelValues(namespace, model, label).Set(1)
	if previous, ok := production.version[key]; ok && previous != label {
		productionVersion.DeleteLabelValues(namespace, model, previous)
	}
	production.version[key] = label
}

// ForgetModel deletes every series of a deleted model, from every Podium metric.
func ForgetModel(namespace, model string) {
	production.Lock()
	defer production.Unlock()
	delete(production.version, [2]string{namespace, model})
	for _, v := range vecs {
		v.DeletePartialMatch(prometheus.Labels{namespaceLabel: namespace, modelLabel: model})
	}
}

// ObserveRolloutDuration records how long a new Production version of model took to serve.
func ObserveRolloutDuration(namespace, model string, d time.Duration) {
	rolloutDuration.WithLabelValues(namespace, model).Observe(d.Seconds())
}

// RecordAutomaticRollback counts one rollback that the operator made by itself.
func RecordAutomaticRollback(namespace, model string) {
	automaticRollbacks.WithLabelValues(namespace, model).Inc()
}

// RecordMeasurement counts one measurement of an online gate of model's rollout; result is
// passed, failed or inconclusive.
func RecordMeasurement(namespace, model, metric, result string) {
	analysisMeasurements.WithLabelValues(namespace, model, metric, result).Inc()
}
