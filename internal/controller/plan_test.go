package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// canaryPlan is a plan of a model whose canary of version 2 is at its first step, and which
// changes nothing yet.
func canaryPlan() plan {
	production := int64(1)
	model := &mlv1.RegisteredModel{Status: mlv1.RegisteredModelStatus{
		ProductionVersion: &production,
		Conditions:        []metav1.Condition{{Type: mlv1.ConditionReconciling, Status: metav1.ConditionTrue, Message: "Step 1 of 2"}},
		Rollout:           &mlv1.RolloutStatus{Version: 2, VersionUID: "uid-2", Phase: mlv1.RolloutProgressing, Step: new(int32(0))},
	}}
	return plan{model: model, status: *model.Status.DeepCopy()}
}

func TestWhichPlansAreWrittenWithoutAFreshRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *plan)
		want   bool
	}{
		{"a measurement", func(p *plan) {
			p.status.Rollout.Metrics = []mlv1.MetricStatus{{Name: "error-rate", Passed: 1}}
		}, true},
		{"the next step, and the condition that reports it", func(p *plan) {
			p.status.Rollout.Step = new(int32(1))
			p.status.Conditions[0].Message = "Step 2 of 2"
		}, true},
		{"a pause for want of data", func(p *plan) { p.status.Rollout.Phase = mlv1.RolloutPaused }, false},
		{"a new candidate", func(p *plan) { p.status.Rollout.VersionUID, p.status.Rollout.Version = "uid-3", 3 }, false},
		{"the end of the rollout", func(p *plan) { p.status.Rollout.Phase = mlv1.RolloutSucceeded }, false},
		{"a new Production version", func(p *plan) { p.status.ProductionVersion = new(int64(2)) }, false},
		{"a version's status", func(p *plan) {
			p.writes = []versionWrite{{version: &mlv1.ModelVersion{}, kind: other}}
		}, false},
		{"a rendering the API server has not checked", func(p *plan) { p.serving.unchecked = true }, false},
		{"a new spec generation", func(p *plan) { p.status.ObservedGeneration = 2 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := canaryPlan()
			tc.change(&p)
			if got := p.rolloutProgressOnly(); got != tc.want {
				t.Errorf("rolloutProgressOnly() = %v, want %v", got, tc.want)
			}
		})
	}
	if p := (plan{}); p.rolloutProgressOnly() {
		t.Error("a plan without a model is never progress only")
	}
}
