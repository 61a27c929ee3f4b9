package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/promotion"
)

// Golden-file tests of what the commands print. After a deliberate change of an output, rewrite
// the files with
//
//	go test ./internal/cli -run TestOutputs -update
//
// and review the diff.

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// goldenNow is the fixed clock of the golden files.
var goldenNow = time.Date(2025, 1, 25, 16, 0, 0, 0, time.UTC)

func TestOutputsMatchGoldenFiles(t *testing.T) {
	model, versions := rolledBackSeed()
	rows := comparisonRows(versions)
	production := &versions[2]
	fresh := seedModel("ml")
	improving := model.DeepCopy()
	improving.Spec.Promotion.RequireImprovement = &mlv1.Improvement{Metric: "test_accuracy", MinDelta: new(mlv1.Number("0.01"))}
	improving.Status.Conditions = append(improving.Status.Conditions, metav1.Condition{
		Type: "Serving", Status: metav1.ConditionTrue, Reason: "Available",
		Message: "Version 3 serves with 2 ready replicas", LastTransitionTime: metav1.NewTime(goldenNow.Add(-5 * time.Minute)),
	})
	limited := model.DeepCopy() // its history holds as many transitions as it keeps
	limited.Spec.HistoryLimit = new(int32(len(limited.Status.History)))
	served := serving{Requested: true, DeploymentName: seed + "-predictor", ServiceName: seed, Version: new(int64(3)), ReadyReplicas: 2}
	canary := improving.DeepCopy()
	value := mlv1.Number("0.002")
	canary.Status.Rollout = &mlv1.RolloutStatus{Version: 4, Phase: mlv1.RolloutProgressing, Step: new(int32(1)), Weight: 50,
		StartTime: &metav1.Time{Time: goldenNow.Add(-3 * time.Minute)},
		Message:   "Step 2 of 2: 50% of the pods run version 4",
		Metrics: []mlv1.MetricStatus{
			{Name: "error-rate", Value: &value, Bound: "<= 0.01", Passed: 6},
			{Name: "p99-latency-seconds", Bound: "<= 0.25", Inconclusive: 1},
		}}
	shadow := canary.DeepCopy()
	shadow.Spec.Serving = &mlv1.Serving{Rollout: &mlv1.Rollout{Strategy: mlv1.RolloutCanary,
		Shadow:  &mlv1.Shadow{Percent: 100, Duration: metav1.Duration{Duration: 5 * time.Minute}},
		Traffic: &mlv1.Traffic{GatewayAPI: &mlv1.GatewayAPITraffic{ParentRefs: []mlv1.ParentReference{{Name: "public-gw"}}}}}}
	shadow.Status.Rollout.Phase, shadow.Status.Rollout.Step, shadow.Status.Rollout.Weight = mlv1.RolloutShadowing, nil, 0
	shadow.Status.Rollout.Message = "Shadow: 100% of the requests are copied to version 4"
	paused := canary.DeepCopy() // held by a person with ml.podium.dev/pause-rollout
	paused.Annotations = map[string]string{mlv1.AnnotationPauseRollout: "true"}
	paused.Status.Rollout.Phase = mlv1.RolloutPaused
	paused.Status.Rollout.Metrics[1].Inconclusive = 0 // else the message would say that the analysis is inconclusive too
	paused.Status.Rollout.Message = "Paused by the annotation ml.podium.dev/pause-rollout: Step 2 of 2: 50% of the pods " +
		"run version 4; remove the annotation (kubectl podium resume) to resume, and the step starts again from its beginning"
	paused.Status.Conditions = []metav1.Condition{
		{Type: mlv1.ConditionReady, Status: metav1.ConditionFalse, Reason: mlv1.ReasonPausedByAnnotation,
			Message: paused.Status.Rollout.Message, LastTransitionTime: metav1.NewTime(goldenNow.Add(-time.Minute))},
		{Type: mlv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: mlv1.ReasonPausedByAnnotation,
			Message: paused.Status.Rollout.Message, LastTransitionTime: metav1.NewTime(goldenNow.Add(-time.Minute))},
	}
	routed := shadow.DeepCopy()
	routed.Status.Rollout.Phase, routed.Status.Rollout.Step, routed.Status.Rollout.Weight = mlv1.RolloutProgressing, new(int32(0)), 10
	routed.Status.Rollout.Message = "Step 1 of 2: 10% of the requests go to version 4"

	for _, tc := range []struct {
		file  string
		write func(io.Writer) error
	}{
		{"compare.golden", func(w io.Writer) error { return writeComparison(w, formatTable, rows, goldenNow) }},
		{"compare-csv.golden", func(w io.Writer) error { return writeComparison(w, formatCSV, rows, goldenNow) }},
		{"compare-json.golden", func(w io.Writer) error { return writeComparison(w, formatJSON, rows, goldenNow) }},
		{"history.golden", func(w io.Writer) error { return writeHistory(w, model, model.Status.History, nil) }},
		{"history-full.golden", func(w io.Writer) error { return writeHistory(w, limited, limited.Status.History, nil) }},
		{"history-registered-by.golden", func(w io.Writer) error {
			return writeHistory(w, model, model.Status.History,
				map[int64]registrant{3: {uid: "uid-3", by: "alice"}, 4: {uid: "uid-4", by: "alice@example.com"}})
		}},
		// Version 3 was deleted and registered again by bob: the rows of the old object name no
		// registrant, since the object bob created never had those stages.
		{"history-number-reused.golden", func(w io.Writer) error {
			reused := model.DeepCopy()
			for i := range reused.Status.History {
				if h := &reused.Status.History[i]; h.Version == 3 {
					h.VersionUID = "uid-3-deleted"
				}
			}
			return writeHistory(w, reused, reused.Status.History,
				map[int64]registrant{3: {uid: "uid-3", by: "bob"}, 4: {uid: "uid-4", by: "alice@example.com"}})
		}},
		{"status.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: model, production: production}, goldenNow)
		}},
		{"status-served-improving.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: improving, production: production, serving: served}, goldenNow)
		}},
		{"status-new-model.golden", func(w io.Writer) error { return writeStatus(w, &modelStatus{model: fresh}, goldenNow) }},
		{"status-canary.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: canary, production: production, serving: served}, goldenNow)
		}},
		{"status-paused.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: paused, production: production, serving: served}, goldenNow)
		}},
		{"status-shadow.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: shadow, production: production, serving: served}, goldenNow)
		}},
		{"status-gateway.golden", func(w io.Writer) error {
			return writeStatus(w, &modelStatus{model: routed, production: production, serving: served}, goldenNow)
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.write(&out); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, out.Bytes())
		})
	}
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; create it with -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; if the change is meant, rerun with -update and review the diff.\n"+
			"--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// rolledBackSeed is the seed model as the operator leaves it after the seed's story and a
// rollback: v1 was Production first, v3 replaced it, v4 replaced v3, and a person rolled back to
// v3. v2 never passed the gate.
func rolledBackSeed() (*mlv1.RegisteredModel, []mlv1.ModelVersion) {
	at := func(day, hour, minute int) metav1.Time {
		return metav1.NewTime(time.Date(2025, 1, day, hour, minute, 0, 0, time.UTC))
	}
	model := seedModel("ml")
	model.Status = mlv1.RegisteredModelStatus{
		ProductionVersion:       new(int64(3)),
		LatestVersion:           new(int64(4)),
		AutomaticPromotionFloor: 4,
		VersionCount:            4,
		Conditions: []metav1.Condition{{
			Type: mlv1.ConditionReady, Status: metav1.ConditionTrue, Reason: mlv1.ReasonReconciled,
			Message: "Version 3 is Production", LastTransitionTime: at(24, 10, 0),
		}},
		History: []mlv1.HistoryEntry{
			{Version: 1, To: mlv1.StageProduction, Reason: mlv1.ReasonGatesPassed,
				Message: "Passed every gate: test_accuracy 0.86 >= 0.85", Time: at(24, 10, 0), By: mlv1.ByOperator},
			{Version: 1, From: mlv1.StageProduction, To: mlv1.StageArchived, Reason: mlv1.ReasonSuperseded,
				Message: "Replaced by version 3", Time: at(25, 12, 15), By: mlv1.ByOperator},
			{Version: 3, To: mlv1.StageProduction, Reason: mlv1.ReasonGatesPassed,
				Message: "Passed every gate: test_accuracy 0.8512 >= 0.85", Time: at(25, 12, 15), By: mlv1.ByOperator},
			{Version: 3, From: mlv1.StageProduction, To: mlv1.StageArchived, Reason: mlv1.ReasonSuperseded,
				Message: "Replaced by version 4", Time: at(25, 14, 30), By: mlv1.ByOperator},
			{Version: 4, To: mlv1.StageProduction, Reason: mlv1.ReasonGatesPassed,
				Message: "Passed every gate: test_accuracy 0.8723 >= 0.85", Time: at(25, 14, 30), By: mlv1.ByOperator},
			{Version: 4, From: mlv1.StageProduction, To: mlv1.StageArchived, Reason: mlv1.ReasonRolledBack,
				Message: "Rolled back to version 3", Time: at(25, 15, 45), By: "alice"},
			{Version: 3, From: mlv1.StageArchived, To: mlv1.StageProduction, Reason: mlv1.ReasonRollback,
				Message: "Rolled back from version 4 by a spec.stage: Production request", Time: at(25, 15, 45), By: "alice"},
		},
	}
	versions := []mlv1.ModelVersion{
		*decided(model, seedVersion("ml", 1, "0.86"), mlv1.StageArchived, at(24, 9, 55)),
		*decided(model, seedVersion("ml", 2, "0.8203"), mlv1.StageNone, at(24, 18, 45)),
		*decided(model, seedVersion("ml", 3, "0.8512"), mlv1.StageProduction, at(25, 12, 15)),
		*decided(model, seedVersion("ml", 4, "0.8723"), mlv1.StageArchived, at(25, 14, 30)),
	}
	versions[0].Spec.Metrics["test_f1"] = "0.8401" // v1 reports a metric no other version does
	return model, versions
}

// decided fills v's status as the operator does for model, in stage.
func decided(model *mlv1.RegisteredModel, v *mlv1.ModelVersion, stage mlv1.Stage, created metav1.Time) *mlv1.ModelVersion {
	v.CreationTimestamp = created
	gates := promotion.EvaluateGates(model.Spec.Promotion.Gates, v.Spec.Metrics)
	passed := metav1.ConditionFalse
	if gates.Passed {
		passed = metav1.ConditionTrue
	}
	v.Status = mlv1.ModelVersionStatus{
		Stage:         stage,
		Gates:         gates.Results,
		PrimaryMetric: promotion.PrimaryMetric(model.Spec.Promotion.Gates, v.Spec.Metrics),
	}
	meta.SetStatusCondition(&v.Status.Conditions, metav1.Condition{
		Type: mlv1.ConditionGatesPassed, Status: passed, Reason: gates.Reason, Message: gates.Message})
	meta.SetStatusCondition(&v.Status.Conditions, metav1.Condition{
		Type: mlv1.ConditionReady, Status: metav1.ConditionTrue, Reason: mlv1.ReasonReconciled, Message: fmt.Sprintf("Stage %s", stage)})
	return v
}
