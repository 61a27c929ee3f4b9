package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

const header = `
# HELP podium_production_version_info 1 for each model, with its Production version as the version label ("none" when it has none).
# TYPE podium_production_version_info gauge
`

// reset empties every metric, so that each test reads only its own series.
func reset(t *testing.T) {
	t.Helper()
	stageTransitions.Reset()
	gateEvaluations.Reset()
	productionVersion.Reset()
	rolloutDuration.Reset()
	automaticRollbacks.Reset()
	analysisMeasurements.Reset()
	production.Lock()
	clear(production.version)
	production.Unlock()
}

// expectSeries compares what controller-runtime's registry, which the manager serves, holds for
// the metric name with want, in the text exposition format.
func expectSeries(t *testing.T, want, name string) {
	t.Helper()
	if err := testutil.GatherAndCompare(metrics.Registry, strings.NewReader(want), name); err != nil {
		t.Fatal(err)
	}
}

func TestRecordTransitionCountsEachTransition(t *testing.T) {
	reset(t)
	RecordTransition("ml", "battle", "", "Production", "GatesPassed")
	RecordTransition("ml", "battle", "Production", "Archived", "Superseded")
	RecordTransition("ml", "battle", "", "Production", "GatesPassed")
	expectSeries(t, `
# HELP podium_stage_transitions_total Stage transitions of model versions, by model, stage left (empty for a new version), stage entered and reason.
# TYPE podium_stage_transitions_total counter
podium_stage_transitions_total{from="",model="battle",namespace="ml",reason="GatesPassed",to="Production"} 2
podium_stage_transitions_total{from="Production",model="battle",namespace="ml",reason="Superseded",to="Archived"} 1
`, "podium_stage_transitions_total")
}

func TestRecordGateEvaluationCountsPassedAndFailed(t *testing.T) {
	reset(t)
	RecordGateEvaluation("ml", "battle", true)
	RecordGateEvaluation("ml", "battle", false)
	RecordGateEvaluation("ml", "battle", false)
	expectSeries(t, `
# HELP podium_gate_evaluations_total Evaluations of a version's metrics against its model's gates, by result (passed or failed).
# TYPE podium_gate_evaluations_total counter
podium_gate_evaluations_total{model="battle",namespace="ml",result="failed"} 2
podium_gate_evaluations_total{model="battle",namespace="ml",result="passed"} 1
`, "podium_gate_evaluations_total")
}

func TestSetProductionVersionKeepsOneSeriesPerModel(t *testing.T) {
	reset(t)
	v3, v4 := int64(3), int64(4)
	SetProductionVersion("ml", "battle", &v3)
	SetProductionVersion("ml", "other", &v3)
	SetProductionVersion("ml", "battle", &v4)
	expectSeries(t, header+`
podium_production_version_info{model="battle",namespace="ml",version="4"} 1
podium_production_version_info{model="other",namespace="ml",version="3"} 1
`, "podium_production_version_info")

	SetProductionVersion("ml", "battle", nil)
	expectSeries(t, header+`
podium_production_version_info{model="battle",namespace="ml",version="none"} 1
podium_production_version_info{model="other",namespace="ml",version="3"} 1
`, "podium_production_version_info")

	SetProductionVersion("ml", "battle", &v3)
	expectSeries(t, header+`
podium_production_version_info{model="battle",namespace="ml",version="3"} 1
podium_production_version_info{model="other",namespace="ml",version="3"} 1
`, "podium_production_version_info")
}

func TestForgetModelDeletesEverySeriesOfTheModelOnly(t *testing.T) {
	reset(t)
	v := int64(4)
	for _, model := range []string{"battle", "other"} {
		RecordTransition("ml", model, "", "Production", "GatesPassed")
		RecordGateEvaluation("ml", model, true)
		SetProductionVersion("ml", model, &v)
		ObserveRolloutDuration("ml", model, time.Second)
		RecordAutomaticRollback("ml", model)
	}
	SetProductionVersion("other-ns", "battle", &v)

	ForgetModel("ml", "battle")
	for _, name := range []string{"podium_stage_transitions_total", "podium_gate_evaluations_total",
		"podium_rollout_duration_seconds", "podium_automatic_rollbacks_total"} {
		if n, err := testutil.GatherAndCount(metrics.Registry, name); err != nil || n != 1 {
			t.Errorf("%s: %d series left after ForgetModel (%v), want 1: model other's", name, n, err)
		}
	}
	expectSeries(t, header+`
podium_production_version_info{model="battle",namespace="other-ns",version="4"} 1
podium_production_version_info{model="other",namespace="ml",version="4"} 1
`, "podium_production_version_info")

	// A model created again under the same name starts afresh.
	SetProductionVersion("ml", "battle", &v)
	if n := testutil.CollectAndCount(productionVersion); n != 3 {
		t.Errorf("%d production series, want 3", n)
	}
}

func TestObserveRolloutDurationFillsTheHistogram(t *testing.T) {
	reset(t)
	ObserveRolloutDuration("ml", "battle", 7*time.Second)
	ObserveRolloutDuration("ml", "battle", 90*time.Second)
	expectSeries(t, `
# HELP podium_rollout_duration_seconds Time from a version's promotion to Production until its prediction Deployment serves it.
# TYPE podium_rollout_duration_seconds histogram
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="1"} 0
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="5"} 0
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="10"} 1
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="30"} 1
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="60"} 1
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="120"} 2
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="300"} 2
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="600"} 2
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="1200"} 2
podium_rollout_duration_seconds_bucket{model="battle",namespace="ml",le="+Inf"} 2
podium_rollout_duration_seconds_sum{model="battle",namespace="ml"} 97
podium_rollout_duration_seconds_count{model="battle",namespace="ml"} 2
`, "podium_rollout_duration_seconds")
}

func TestRecordAutomaticRollbackCounts(t *testing.T) {
	reset(t)
	RecordAutomaticRollback("ml", "battle")
	RecordAutomaticRollback("ml", "battle")
	if got := testutil.ToFloat64(automaticRollbacks.WithLabelValues("ml", "battle")); got != 2 {
		t.Fatalf("podium_automatic_rollbacks_total = %v, want 2", got)
	}
}

func TestMetricNamesFollowPrometheusConventions(t *testing.T) {
	reset(t)
	v := int64(1)
	RecordTransition("ml", "battle", "", "Production", "GatesPassed")
	RecordGateEvaluation("ml", "battle", true)
	SetProductionVersion("ml", "battle", &v)
	ObserveRolloutDuration("ml", "battle", time.Second)
	RecordAutomaticRollback("ml", "battle")
	problems, err := testutil.GatherAndLint(metrics.Registry, "podium_stage_transitions_total",
		"podium_gate_evaluations_total", "podium_production_version_info", "podium_rollout_duration_seconds",
		"podium_automatic_rollbacks_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("lint problems: %v", problems)
	}
}

func TestRecordMeasurementCountsByMetricAndResult(t *testing.T) {
	reset(t)
	RecordMeasurement("ml", "battle", "error-rate", "passed")
	RecordMeasurement("ml", "battle", "error-rate", "passed")
	RecordMeasurement("ml", "battle", "p99-latency", "inconclusive")
	expectSeries(t, `
# HELP podium_analysis_measurements_total Measurements of a rollout's online gates, by metric and result (passed, failed or inconclusive).
# TYPE podium_analysis_measurements_total counter
podium_analysis_measurements_total{metric="error-rate",model="battle",namespace="ml",result="passed"} 2
podium_analysis_measurements_total{metric="p99-latency",model="battle",namespace="ml",result="inconclusive"} 1
`, "podium_analysis_measurements_total")
}
